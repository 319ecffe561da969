import Basics
import CSndfile
import CSoxr
import Foundation

/// Reads audio through libsndfile (WAV, FLAC, Ogg/Vorbis/Opus, …) as NeMo's loader does:
/// float samples (integer PCM scaled by 1/2^(bits−1)), channels averaged to mono, resampled to
/// the target rate with soxr's high-quality band-limited filter (librosa's default).
public enum AudioFile {
    public struct Info {
        public let sampleRate: Int
        public let channels: Int
        public let frames: Int
        public var duration: Double { Double(frames) / Double(sampleRate) }
    }

    public static func info(_ path: String) throws -> Info {
        try withOpened(.file(path)) { _, info in info }
    }

    /// Where encoded audio comes from: a file, or bytes in memory (a tar member), which
    /// libsndfile reads through its virtual I/O, the same decoder either way.
    public enum Source {
        case file(String)
        /// `bytes` with `name` for messages ("shard.tar:member.wav").
        case memory(UnsafeRawBufferPointer, name: String)

        var name: String {
            switch self {
            case .file(let path): path
            case .memory(_, let name): name
            }
        }
    }

    /// A read position over bytes in memory, for libsndfile's virtual I/O callbacks.
    private final class MemoryStream {
        let bytes: UnsafeRawBufferPointer
        var position = 0
        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
    }

    private static var memoryIO = SF_VIRTUAL_IO(
        get_filelen: { user in sf_count_t(Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue().bytes.count) },
        seek: { offset, whence, user in
            let s = Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue()
            let base = whence == SEEK_CUR ? s.position : whence == SEEK_END ? s.bytes.count : 0
            s.position = max(0, min(s.bytes.count, base + Int(offset)))
            return sf_count_t(s.position)
        },
        read: { destination, count, user in
            let s = Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue()
            let n = max(0, min(Int(count), s.bytes.count - s.position))
            if n > 0, let base = s.bytes.baseAddress { destination!.copyMemory(from: base + s.position, byteCount: n) }
            s.position += n
            return sf_count_t(n)
        },
        write: { _, _, _ in 0 },
        tell: { user in sf_count_t(Unmanaged<MemoryStream>.fromOpaque(user!).takeUnretainedValue().position) })

    /// Opens `source`, checks what libsndfile reports, runs `body`, closes.
    private static func withOpened<R>(_ source: Source, _ body: (OpaquePointer, Info) throws -> R) throws -> R {
        let path = source.name
        var sfInfo = SF_INFO()
        let opened: OpaquePointer?
        var stream: MemoryStream?
        switch source {
        case .file(let p):
            try RegularFile.check(p)
            opened = sf_open(p, Int32(SFM_READ), &sfInfo)
        case .memory(let bytes, _):
            stream = MemoryStream(bytes)
            opened = sf_open_virtual(&memoryIO, Int32(SFM_READ), &sfInfo, Unmanaged.passUnretained(stream!).toOpaque())
        }
        guard let file = opened else {
            throw NestError(file: path, "not a readable audio file (\(String(cString: sf_strerror(nil))))")
        }
        defer { sf_close(file); withExtendedLifetime(stream) {} }
        let info = Info(sampleRate: Int(sfInfo.samplerate), channels: Int(sfInfo.channels), frames: Int(sfInfo.frames))
        // libsndfile reads a file whose header promises more data than it holds and notes the
        // mismatch in its log ("data : N (should be M)"); a training corpus wants to know. Its
        // other remarks are warnings, and so is a declared size of 0xFFFFFFFF: the "length
        // unknown" of a WAV written to a pipe (ffmpeg, sox), which libsndfile, soundfile and
        // NeMo read to its end.
        var log = [CChar](repeating: 0, count: 4096)
        sf_command(file, Int32(SFC_GET_LOG_INFO), &log, Int32(log.count))
        let damage = String(cString: log).split(separator: "\n").first { line in
            if line.lowercased().contains("truncated") { return true }
            guard let note = line.range(of: " (should be ") else { return false }
            return line[..<note.lowerBound].split(separator: ":").last?.trimmingCharacters(in: .whitespaces) != String(UInt32.max)
        }
        if let damage {
            throw NestError(file: path, "truncated or damaged file (\(damage.trimmingCharacters(in: .whitespaces)))")
        }
        guard (1000...384_000).contains(info.sampleRate) else { throw NestError(file: path, "unsupported sample rate \(info.sampleRate) Hz") }
        guard (1...64).contains(info.channels) else { throw NestError(file: path, "unsupported channel count \(info.channels)") }
        return try body(file, info)
    }

    /// Mono samples at `sampleRate`, from `offset` seconds for `duration` seconds (the whole
    /// file when nil). Only the requested window is decoded.
    public static func read(_ path: String, offset: Double = 0, duration: Double? = nil, sampleRate: Int = 16000) throws -> [Float] {
        try read(.file(path), offset: offset, duration: duration, sampleRate: sampleRate)
    }

    public static func read(_ source: Source, offset: Double = 0, duration: Double? = nil, sampleRate: Int = 16000) throws -> [Float] {
        let path = source.name
        let (mono, rate) = try withOpened(source) { file, info -> ([Float], Int) in
            let start = max(0, Int((offset * Double(info.sampleRate)).rounded()))
            guard start < info.frames || info.frames == 0 else {
                throw NestError(file: path, "offset \(offset) s is past the end (\(String(format: "%.3f", info.duration)) s)")
            }
            let wanted = duration.map { Int(($0 * Double(info.sampleRate)).rounded()) } ?? (info.frames - start)
            let count = max(0, min(wanted, info.frames - start))
            guard count > 0 else { throw NestError(file: path, "no audio samples (empty file or empty window)") }
            if start > 0 && sf_seek(file, sf_count_t(start), SEEK_SET) < 0 {
                throw NestError(file: path, "cannot seek to \(offset) s")
            }
            var interleaved = [Float](repeating: 0, count: count * info.channels)
            let got = Int(sf_readf_float(file, &interleaved, sf_count_t(count)))
            guard got > 0 else { throw NestError(file: path, "truncated or corrupted audio data (read 0 of \(count) frames)") }
            if got < count && Double(count - got) > 0.01 * Double(count) + Double(info.sampleRate) / 100 {
                throw NestError(file: path, "truncated: read \(got) of \(count) frames")
            }
            var mono = [Float](repeating: 0, count: got)
            let ch = info.channels
            for i in 0..<got {
                var s: Float = 0
                for c in 0..<ch { s += interleaved[i * ch + c] }
                mono[i] = ch == 1 ? s : s / Float(ch)
            }
            if let bad = mono.firstIndex(where: { !$0.isFinite }) {
                throw NestError(file: path, "non-finite sample at \(String(format: "%.3f", Double(bad) / Double(info.sampleRate))) s")
            }
            return (mono, info.sampleRate)
        }
        return rate == sampleRate ? mono : try resample(mono, from: rate, to: sampleRate, path: path)
    }

    /// Band-limited resampling with soxr (SOXR_HQ: 20-bit precision, steep low-pass at 95 %
    /// of the lower Nyquist).
    public static func resample(_ x: [Float], from inRate: Int, to outRate: Int, path: String = "<memory>") throws -> [Float] {
        let outCount = Int((Double(x.count) * Double(outRate) / Double(inRate)).rounded())
        var out = [Float](repeating: 0, count: outCount + 16)
        var done = 0
        var quality = soxr_quality_spec(UInt(SOXR_HQ), 0)
        var io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        let error = x.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                soxr_oneshot(Double(inRate), Double(outRate), 1, input.baseAddress, x.count, nil,
                             output.baseAddress, output.count, &done, &io, &quality, nil)
            }
        }
        if let error { throw NestError(file: path, "resampling failed: \(String(cString: error))") }
        return Array(out.prefix(min(done, outCount)))
    }

    /// Writes mono WAV, 16-bit PCM or 32-bit float (for tests and generated data).
    public static func writeWAV(_ samples: [Float], sampleRate: Int, to path: String, float: Bool = false) throws {
        var info = SF_INFO()
        info.samplerate = Int32(sampleRate)
        info.channels = 1
        info.format = Int32(SF_FORMAT_WAV | (float ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16))
        guard let file = sf_open(path, Int32(SFM_WRITE), &info) else {
            throw NestError(file: path, "cannot create WAV file")
        }
        defer { sf_close(file) }
        var data = samples
        if Int(sf_writef_float(file, &data, sf_count_t(samples.count))) != samples.count {
            throw NestError(file: path, "short write (disk full?)")
        }
    }
}
