import Interop
import Config
import Audio
import Foundation
import Model
import Tensor
import Training
import XCTest
import _TestSupport

/// Random and mutated inputs to every reader of untrusted files: each case must end in a
/// clean error (or a correct read), never a crash, a hang or an unbounded allocation.
final class ReaderFuzzTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func testMutatedAndRandomCheckpoints() throws {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let original = try Data(contentsOf: URL(fileURLWithPath: dir + "/NEST-tiny/checkpoints/step-00000001.h5"))
        let config = try RunConfig(try ConfigDocument(contentsOf: CLI.root.appendingPathComponent("Configs/tiny.yaml").path), requireData: false)
        let (model, _) = ModelFactory.make(config)
        let rng = RandomGenerator(seed: 99)
        let path = dir + "/fuzz.h5"
        var rejected = 0, changed = 0
        let cases = 1500
        for i in 0..<cases {
            var data = original
            switch i % 6 {
            case 0: for _ in 0..<rng.int(in: 1...8) { data[rng.int(in: 0...(data.count - 1))] ^= UInt8(rng.int(in: 1...255)) }
            case 1: data = data.prefix(rng.int(in: 0...(data.count - 1)))
            case 2: data = Data((0..<rng.int(in: 0...4096)).map { _ in UInt8(rng.int(in: 0...255)) })
            case 3: data[rng.int(in: 0...23)] = UInt8(rng.int(in: 0...255))          // the seal itself
            case 4: data.append(Data((0..<rng.int(in: 1...64)).map { _ in UInt8(rng.int(in: 0...255)) }))
            default:                                                              // a block moved
                let a = rng.int(in: 512...(data.count - 600)), b = rng.int(in: 512...(data.count - 600))
                let block = data.subdata(in: a..<(a + 64))
                data.replaceSubrange(b..<(b + 64), with: block)
                if a == b { data[a] ^= 1 }
            }
            if data != original { changed += 1 }
            try data.write(to: URL(fileURLWithPath: path))
            do {
                _ = try Checkpoint.read(from: path, model: model, optimizer: nil)
                XCTAssertEqual(data, original, "case \(i): a damaged checkpoint was accepted")
            } catch {
                rejected += 1
            }
        }
        print("checkpoint fuzz: \(cases) cases (\(changed) actually changed the file), \(rejected) rejected with an error")
        XCTAssertEqual(rejected, changed, "every changed file is rejected, every unchanged one accepted")
        XCTAssertGreaterThan(changed, cases * 9 / 10)
    }

    func testMutatedManifestsAndConfigs() throws {
        let dir = CLI.temporaryDirectory()
        let manifest = try String(contentsOfFile: CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path, encoding: .utf8)
        let yaml = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, encoding: .utf8)
        let rng = RandomGenerator(seed: 5)
        let alphabet = Array("{}[]\":,.-+eE0123456789 \n\\ntruefalsenull${}?:#'".utf8)
        func mutate(_ text: String) -> String {
            var bytes = Array(text.utf8)
            for _ in 0..<rng.int(in: 1...6) {
                let i = rng.int(in: 0...max(bytes.count - 1, 0))
                switch rng.int(in: 0...2) {
                case 0: if !bytes.isEmpty { bytes[i] = alphabet[rng.int(in: 0...(alphabet.count - 1))] }
                case 1: if !bytes.isEmpty { bytes.remove(at: i) }
                default: bytes.insert(alphabet[rng.int(in: 0...(alphabet.count - 1))], at: min(i, bytes.count))
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        var outcomes = [0, 0]
        for i in 0..<1500 {
            let p = dir + "/m\(i % 7).json"
            try mutate(manifest).write(toFile: p, atomically: false, encoding: .utf8)
            do { _ = try Manifest(paths: [p], minDuration: 0.1, maxDuration: 60); outcomes[0] += 1 } catch { outcomes[1] += 1 }
        }
        print("manifest fuzz: 1500 cases, \(outcomes[0]) read, \(outcomes[1]) rejected")
        XCTAssertGreaterThan(outcomes[1], 100)
        outcomes = [0, 0]
        for _ in 0..<1000 {
            do { _ = try RunConfig(try ConfigDocument(text: mutate(yaml), file: "fuzz.yaml"), requireData: false); outcomes[0] += 1 } catch { outcomes[1] += 1 }
        }
        print("config fuzz: 1000 cases, \(outcomes[0]) read, \(outcomes[1]) rejected")
        XCTAssertGreaterThan(outcomes[1], 100)
    }

    /// YAML structure, not bytes: anchors and aliases, deep brackets, and `${…}` references to
    /// other keys (cycles among them) spliced into the tiny config. Each case reads or is
    /// refused; none may crash, hang or expand.
    func testYAMLStructureMutations() throws {
        let yaml = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, encoding: .utf8)
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let valueLines = lines.indices.filter { lines[$0].contains(": ") && !lines[$0].trimmingCharacters(in: .whitespaces).hasPrefix("#") }
        let keys = try ConfigDocument(text: yaml, file: "tiny.yaml").root.leaves.keys.sorted()
        let rng = RandomGenerator(seed: 11)
        func pick<T>(_ a: [T]) -> T { a[rng.int(in: 0...(a.count - 1))] }
        var outcomes = [0, 0], slowest = 0.0
        for i in 0..<600 {
            var mutated = lines
            for _ in 0..<rng.int(in: 1...4) {
                let at = pick(valueLines)
                let (key, _) = (mutated[at].components(separatedBy: ": ")[0], ())
                switch rng.int(in: 0...4) {
                case 0:   // an anchor here, aliases of it below
                    mutated[at] = mutated[at].replacingOccurrences(of: ": ", with: ": &a\(i) ", options: [], range: mutated[at].range(of: ": "))
                    for _ in 0..<rng.int(in: 1...20) { mutated.append("a\(i)_\(rng.int(in: 0...999)): [*a\(i), *a\(i), *a\(i)]") }
                case 1:   // a value wrapped in brackets, up to far past the depth limit
                    let depth = rng.int(in: 1...6000)
                    mutated[at] = key + ": " + String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
                case 2:   // a reference to some key (a cycle when it leads back)
                    mutated[at] = key + ": ${" + pick(keys) + "}"
                case 3:   // a reference inside text
                    mutated[at] = key + ": x${" + pick(keys) + "}y${" + pick(keys) + "}"
                default:  // a self-doubling chain of anchors
                    var previous = "[1, 2]"
                    for level in 0..<rng.int(in: 2...12) {
                        mutated.append("c\(i)_\(level): &c\(i)_\(level) \(previous)")
                        previous = "[" + Array(repeating: "*c\(i)_\(level)", count: 8).joined(separator: ", ") + "]"
                    }
                }
            }
            let started = Date()
            do {
                _ = try RunConfig(try ConfigDocument(text: mutated.joined(separator: "\n"), file: "fuzz.yaml"), requireData: false)
                outcomes[0] += 1
            } catch {
                XCTAssertTrue("\(error)".contains("fuzz.yaml") || "\(error)".contains("override"), "case \(i): an error that names no file: \(error)")
                outcomes[1] += 1
            }
            slowest = max(slowest, Date().timeIntervalSince(started))
        }
        print("YAML structure fuzz: 600 cases, \(outcomes[0]) read, \(outcomes[1]) rejected, slowest \(String(format: "%.2f", slowest)) s")
        XCTAssertGreaterThan(outcomes[1], 300)
    }

    /// A gzip-compressed `.nemo` (NeMo < 1.7), its compressed bytes damaged: each case is read
    /// to the same model or refused with an error.
    func testMutatedCompressedArchives() throws {
        let dir = CLI.temporaryDirectory()
        let nemo = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.nemo").path
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gzip.arguments = ["-c", "gzip -c '\(nemo)' > '\(dir)/old.nemo'"]
        try gzip.run()
        gzip.waitUntilExit()
        let original = try Data(contentsOf: URL(fileURLWithPath: dir + "/old.nemo"))
        let reference = try NemoFile(dir + "/old.nemo")
        let rng = RandomGenerator(seed: 12)
        var outcomes = [0, 0]
        for i in 0..<300 {
            var data = original
            switch i % 4 {
            case 0: for _ in 0..<rng.int(in: 1...4) { data[rng.int(in: 0...(data.count - 1))] ^= UInt8(rng.int(in: 1...255)) }
            case 1: data = data.prefix(rng.int(in: 2...(data.count - 1)))
            case 2: data.replaceSubrange(10..<min(data.count, 10 + rng.int(in: 1...4096)), with: Data((0..<rng.int(in: 1...4096)).map { _ in UInt8(rng.int(in: 0...255)) }))
            default: data.append(Data((0..<rng.int(in: 1...64)).map { _ in UInt8(rng.int(in: 0...255)) }))
            }
            let path = dir + "/m\(i % 5).nemo"
            try data.write(to: URL(fileURLWithPath: path))
            do {
                let read = try NemoFile(path)
                XCTAssertEqual(read.configYAML, reference.configYAML, "case \(i)")
                XCTAssertEqual(try read.runConfig().model, try reference.runConfig().model, "case \(i)")
                outcomes[0] += 1
            } catch {
                XCTAssertTrue("\(error)".contains(path), "case \(i): \(error)")
                outcomes[1] += 1
            }
        }
        print("compressed archive fuzz: 300 cases, \(outcomes[0]) read, \(outcomes[1]) rejected")
        XCTAssertGreaterThan(outcomes[1], 200)
    }
}
