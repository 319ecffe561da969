import Basics
import Formats
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Training
import XCTest
import _TestSupport

/// What a run reports about itself: validation baselines with standard errors, TensorBoard
/// event files, the curves picture.
final class ReportingTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func testBaselinesOfAHandMadeTargetList() {
        // Targets 0,0,0,1 (model predicts 0,1,1,1: three right), NLLs 1,2,3,4.
        var t = TargetStatistics()
        for (target, prediction, nll) in [(0, 0, 1.0), (0, 1, 2.0), (0, 1, 3.0), (1, 1, 4.0)] {
            t.add(target: target, prediction: prediction, nll: nll)
        }
        XCTAssertEqual(t.count, 4)
        XCTAssertEqual(t.majority, 0)
        XCTAssertEqual(t.priorAccuracy, 0.75)
        XCTAssertEqual(t.priorAccuracyError, (0.75 * 0.25 / 4).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(t.accuracy, 0.5)
        let h = -(0.75 * log(0.75) + 0.25 * log(0.25))
        XCTAssertEqual(t.entropy, h, accuracy: 1e-12)
        let second = 0.75 * log(0.75) * log(0.75) + 0.25 * log(0.25) * log(0.25)
        XCTAssertEqual(t.entropyError, ((second - h * h) / 4).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(t.loss, 2.5)
        XCTAssertEqual(t.lossError, ((7.5 - 6.25) / 4).squareRoot(), accuracy: 1e-12)   // E[x²] = 30/4
        XCTAssertEqual(t.informationGain, h - 2.5, accuracy: 1e-12)
        XCTAssertEqual(t.nonMajorityAccuracy, 1, "the one non-majority target was predicted right")
        XCTAssertEqual(t.majorityShare, 0.25, "one prediction of four is the majority code")
        XCTAssertEqual(t.codebookUsage(classes: 8), 0.25)
        var merged = TargetStatistics()
        merged += t
        merged += t
        XCTAssertEqual(merged.count, 8)
        XCTAssertEqual(merged.priorAccuracy, 0.75)
    }

    func testCRC32CAndTFRecordFraming() {
        XCTAssertEqual(CRC32C.checksum(Data("123456789".utf8)), 0xE306_9283, "the standard check value")
        let r = TensorBoardEvents.record(Data([1, 2, 3]))
        XCTAssertEqual(r.count, 8 + 4 + 3 + 4)
        XCTAssertEqual(r.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }, 3)
    }

    /// A run writes validation rows with the baselines, TensorBoard events holding every field,
    /// and curves.svg; `nest-train plot` redraws it.
    func testRunReportsBaselinesTensorBoardAndCurves() throws {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "++model.validation_ds.mask_draws=2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("vs target entropy") && r.stderr.contains("vs prior"), r.stderr)
        let run = dir + "/NEST-tiny"
        let rows = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let validation = rows.filter { $0["val_loss"] != nil }
        XCTAssertEqual(validation.count, 3)   // steps 0, 4, 8
        for v in validation {
            for key in ["val_loss_se", "val_masked_acc_se", "val_prior_acc", "val_prior_acc_se", "val_target_entropy", "val_target_entropy_se",
                        "val_info_gain", "val_info_gain_se", "val_nonsilent_acc", "val_majority_share", "val_codebook_usage", "val_augmented"] {
                XCTAssertNotNil(v[key], key)
            }
            XCTAssertEqual(v["val_mask_draws"] as? Int, 2)
            let gain = (v["val_target_entropy"] as! Double) - (v["val_loss"] as! Double)
            XCTAssertEqual(v["val_info_gain"] as! Double, gain, accuracy: 1e-6)
        }
        // The same validation with one draw sees about half the masked tokens.
        let one = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(one)", "trainer.max_steps=1"]).status, 0)
        let first = try String(contentsOfFile: one + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.first { $0["val_loss"] != nil }!
        XCTAssertGreaterThan(validation[0]["val_masked_tokens"] as! Int, first["val_masked_tokens"] as! Int)

        // TensorBoard: one event file, framing and CRCs intact, every row's fields as scalars.
        let eventFiles = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(eventFiles.count, 1)
        let events = try TFRecordReader.events(Data(contentsOf: URL(fileURLWithPath: run + "/" + eventFiles[0])))
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        for row in rows {
            let step = row["step"] as! Int
            let matching = events.filter { $0.step == step && !$0.scalars.isEmpty }
            for (key, value) in row where key != "step" {
                let expected: Float? = (value as? Bool).map { $0 ? 1 : 0 } ?? (value as? NSNumber).map { Float(truncating: $0) }
                guard let expected else { continue }
                // metrics.jsonl holds 9 significant digits, the event file a float32: equal to rounding.
                XCTAssertTrue(matching.contains { $0.scalars[key].map { abs($0 - expected) <= 1e-6 * max(1, abs(expected)) } ?? false },
                              "step \(step) \(key) = \(expected) missing from the event file")
            }
        }

        // curves.svg: well-formed XML, one path per curve.
        try FileManager.default.removeItem(atPath: run + "/curves.svg")
        XCTAssertEqual(try CLI.run(["plot", run]).status, 0)
        let svg = try Data(contentsOf: URL(fileURLWithPath: run + "/curves.svg"))
        let parser = XMLParser(data: svg)
        let counter = ElementCounter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "curves.svg is not well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        XCTAssertEqual(counter.counts["path"], 6, "loss, val loss, entropy, val accuracy, prior, lr")
    }
}

/// A TFRecord/Event reader written for the test (not the writer's code): checks both CRCs of
/// every record and decodes wall time, step, file version and scalar values.
enum TFRecordReader {
    struct Event { var step = 0; var fileVersion: String?; var scalars: [String: Float] = [:] }

    static func events(_ data: Data) throws -> [Event] {
        let bytes = [UInt8](data)
        var out: [Event] = [], p = 0
        func u32(_ i: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i + $1]) << (8 * UInt32($1)) } }
        func masked(_ slice: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in slice {
                c ^= UInt32(b)
                for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            }
            c ^= 0xFFFF_FFFF
            return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
        }
        while p + 12 <= bytes.count {
            let length = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[p + $1]) << (8 * UInt64($1)) })
            guard masked(bytes[p..<(p + 8)]) == u32(p + 8) else { throw NestError("length CRC at \(p)") }
            let body = bytes[(p + 12)..<(p + 12 + length)]
            guard masked(body) == u32(p + 12 + length) else { throw NestError("data CRC at \(p)") }
            out.append(try decode(Array(body)))
            p += 12 + length + 4
        }
        guard p == bytes.count else { throw NestError("trailing bytes") }
        return out
    }

    static func decode(_ b: [UInt8]) throws -> Event {
        var e = Event(), i = 0
        func varint() -> UInt64 { var v: UInt64 = 0, s: UInt64 = 0; while true { let x = b[i]; i += 1; v |= UInt64(x & 0x7F) << s; if x < 0x80 { return v }; s += 7 } }
        while i < b.count {
            let key = varint()
            switch (key >> 3, key & 7) {
            case (1, 1): i += 8
            case (2, 0): e.step = Int(Int64(bitPattern: varint()))
            case (3, 2): let n = Int(varint()); e.fileVersion = String(decoding: b[i..<(i + n)], as: UTF8.self); i += n
            case (5, 2):
                let end = Int(varint()) + i
                while i < end {
                    _ = varint()   // Summary.value, length-delimited
                    let valueEnd = Int(varint()) + i
                    var tag = "", value: Float = .nan
                    while i < valueEnd {
                        let k = varint()
                        if k == (1 << 3 | 2) { let n = Int(varint()); tag = String(decoding: b[i..<(i + n)], as: UTF8.self); i += n }
                        else if k == (2 << 3 | 5) { value = Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[i + $1]) << (8 * UInt32($1)) }); i += 4 }
                        else { throw NestError("unexpected Summary.Value field \(k)") }
                    }
                    e.scalars[tag] = value
                }
            default: throw NestError("unexpected Event field \(key)")
            }
        }
        return e
    }
}

final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        counts[name, default: 0] += 1
    }
}
