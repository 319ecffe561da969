import Foundation

/// A bounds-checked window onto bytes (often a memory-mapped file): every read names what it
/// wanted when the bytes are not there, and nothing is allocated from a length field before
/// the bytes it describes are known to exist.
public struct Bytes {
    public let data: Data
    /// The window within `data`, as offsets from `data.startIndex`.
    public let range: Range<Int>
    /// For messages: the file and, within it, the member.
    public let origin: String

    public init(_ data: Data, origin: String) {
        self.data = data
        range = 0..<data.count
        self.origin = origin
    }

    init(data: Data, range: Range<Int>, origin: String) {
        self.data = data
        self.range = range
        self.origin = origin
    }

    /// Maps a file read-only (the pages stay the file's: no copy in memory).
    public static func mapping(_ path: String) throws -> Bytes {
        try RegularFile.check(path)
        do {
            return Bytes(try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped), origin: path)
        } catch {
            throw NestError(file: path, "cannot read (\(error.localizedDescription))")
        }
    }

    public var count: Int { range.count }

    /// A sub-window at `offset` of `length` bytes, checked.
    public func slice(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String) throws -> Bytes {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw NestError("\(origin): \(what()) needs bytes \(offset)..<\(offset &+ length), the data has \(count)")
        }
        return Bytes(data: data, range: (range.lowerBound + offset)..<(range.lowerBound + offset + length), origin: origin)
    }

    public func named(_ origin: String) -> Bytes { Bytes(data: data, range: range, origin: origin) }

    public func uint(_ offset: Int, _ width: Int, _ what: @autoclosure () -> String) throws -> UInt64 {
        let s = try slice(offset, width, what())
        return s.withUnsafeBytes { p in (0..<width).reduce(UInt64(0)) { $0 | UInt64(p[$1]) << (8 * UInt64($1)) } }
    }
    public func u16(_ o: Int, _ what: @autoclosure () -> String) throws -> Int { Int(try uint(o, 2, what())) }
    public func u32(_ o: Int, _ what: @autoclosure () -> String) throws -> Int { Int(try uint(o, 4, what())) }
    public func u64(_ o: Int, _ what: @autoclosure () -> String) throws -> UInt64 { try uint(o, 8, what()) }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try data.withUnsafeBytes { all in try body(UnsafeRawBufferPointer(rebasing: all[range])) }
    }

    public var array: [UInt8] { withUnsafeBytes { Array($0) } }
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    public func starts(with prefix: [UInt8]) -> Bool {
        count >= prefix.count && withUnsafeBytes { Array($0.prefix(prefix.count)) } == prefix
    }
}
