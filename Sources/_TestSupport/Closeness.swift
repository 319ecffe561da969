import XCTest

/// Element-wise closeness |a − e| ≤ atol + rtol·|e|; a failure reports the worst element and its
/// index so that a transposed or shifted result is recognisable from the message alone.
public func assertClose(_ actual: [Float], _ expected: [Float], atol: Float, rtol: Float = 0,
                        _ what: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what()): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess: Float = 0
    var maxAbs: Float = 0
    for i in 0..<actual.count {
        let err = abs(actual[i] - expected[i])
        maxAbs = max(maxAbs, err.isNaN ? .infinity : err)
        let excess = err - (atol + rtol * abs(expected[i]))
        if excess > worstExcess || err.isNaN || (actual[i].isNaN != expected[i].isNaN) {
            if worst < 0 || excess > worstExcess || err.isNaN { worst = i; worstExcess = err.isNaN ? .infinity : excess }
        }
    }
    if worst >= 0 {
        XCTFail("\(what()): element \(worst) is \(actual[worst]), expected \(expected[worst]) "
                + "(max abs error \(maxAbs), atol \(atol), rtol \(rtol), \(actual.count) elements)", file: file, line: line)
    }
}
