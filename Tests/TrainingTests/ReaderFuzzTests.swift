import Config
import Audio
import Foundation
import Model
import Tensor
import Training
import XCTest

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
}
