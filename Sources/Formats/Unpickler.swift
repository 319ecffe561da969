import Basics
import Foundation

/// A restricted unpickler for PyTorch state dicts, anchored on torch's `weights_only`
/// unpickler and accepting a subset of it: it builds symbolic values and never calls anything.
/// Globals come from a fixed table (checked as soon as GLOBAL is read), REDUCE applies only
/// those entries, containers are shared by reference as Python's memo shares them, and every
/// length is checked against the remaining bytes before anything is allocated. Stack, memo,
/// MARK depth and operation count are capped.
public struct Unpickler {
    /// Symbolic values. Containers are classes, so the memo and the stack share them.
    public indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String)
        case tuple([Value])
        case list(ListBox)
        case dict(DictBox)
        case global(Global)
        case storage(StorageRef)
        case tensor(TensorRef)
    }

    public final class ListBox {
        public var items: [Value] = []
        /// Nesting depth of the contents (bounded: releasing a deep chain would recurse).
        var depth = 1
    }
    /// An ordered dict with string or int keys (state dicts, `_metadata`).
    public final class DictBox {
        public var items: [(key: Value, value: Value)] = []
        var depth = 1
        /// BUILD's attribute dict (torch keeps `_metadata` there).
        public var attributes: [(key: Value, value: Value)] = []
    }

    /// The globals a state dict needs.
    public enum Global: Equatable {
        case orderedDict, rebuildTensorV2, rebuildParameter, rebuildParameterWithState, rebuildFromTypeV2, tensorType, parameterType
        case storageType(DType)
    }

    public struct StorageRef: Equatable {
        public let key: String
        public let dtype: DType
        /// Elements of the whole storage.
        public let count: Int
    }

    public struct TensorRef {
        public let storage: StorageRef
        public let offset: Int
        public let shape: [Int]
        public let strides: [Int]
    }

    public struct Limits {
        public var operations = 10_000_000
        public var stack = 100_000
        public var memo = 1_000_000
        public var depth = 64
        public var rank = 8
        public init() {}
    }

    static let globals: [String: Global] = [
        "collections\nOrderedDict": .orderedDict,
        "torch._utils\n_rebuild_tensor_v2": .rebuildTensorV2,
        "torch._utils\n_rebuild_parameter": .rebuildParameter,
        "torch._utils\n_rebuild_parameter_with_state": .rebuildParameterWithState,
        "torch._tensor\n_rebuild_from_type_v2": .rebuildFromTypeV2,
        "torch\nTensor": .tensorType,
        "torch.nn.parameter\nParameter": .parameterType,
        "torch\nFloatStorage": .storageType(.float32),
        "torch\nDoubleStorage": .storageType(.float64),
        "torch\nLongStorage": .storageType(.int64),
        "torch\nHalfStorage": .storageType(.float16),
        "torch\nBFloat16Storage": .storageType(.bfloat16),
    ]

    /// Storage classes torch has that a NEST state dict never holds: named in the error.
    static let refusedStorages: Set<String> = ["IntStorage", "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
                                                "ComplexFloatStorage", "ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "UntypedStorage"]

    /// Unpickles `bytes` (one pickle, protocol 2 or later, ending exactly at STOP).
    public static func load(_ bytes: Bytes, limits: Limits = Limits()) throws -> Value {
        try bytes.withUnsafeBytes { p in
            var machine = Machine(p: p, origin: bytes.origin, limits: limits)
            return try machine.run()
        }
    }

    struct Machine {
        let p: UnsafeRawBufferPointer
        let origin: String
        let limits: Limits
        var pos = 0
        /// Values with their nesting depth.
        var stack: [(value: Value, depth: Int)] = []
        var marks: [Int] = []
        var memo: [Int: (value: Value, depth: Int)] = [:]

        init(p: UnsafeRawBufferPointer, origin: String, limits: Limits) {
            self.p = p
            self.origin = origin
            self.limits = limits
        }

        func fail(_ message: String) -> NestError { NestError("\(origin): pickle byte \(pos): \(message)") }

        mutating func byte() throws -> UInt8 {
            guard pos < p.count else { throw fail("truncated") }
            defer { pos += 1 }
            return p[pos]
        }

        mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
            guard n >= 0, n <= p.count - pos else { throw fail("needs \(n) bytes, \(p.count - pos) remain") }
            defer { pos += n }
            return UnsafeRawBufferPointer(rebasing: p[pos..<(pos + n)])
        }

        mutating func le(_ n: Int) throws -> UInt64 {
            let b = try take(n)
            return (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[$1]) << (8 * UInt64($1)) }
        }

        mutating func line() throws -> String {
            guard let end = p[pos...].firstIndex(of: 0x0A), end - pos <= 256 else { throw fail("unterminated GLOBAL name") }
            defer { pos = end + 1 }
            return String(decoding: p[pos..<end], as: UTF8.self)
        }

        mutating func push(_ v: Value, depth: Int = 0) throws {
            guard stack.count < limits.stack else { throw fail("stack deeper than \(limits.stack)") }
            guard depth <= limits.depth else { throw fail("values nested deeper than \(limits.depth)") }
            stack.append((v, depth))
        }

        mutating func popEntry() throws -> (value: Value, depth: Int) {
            guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw fail("stack underflow") }
            return v
        }

        mutating func pop() throws -> Value { try popEntry().value }

        mutating func popMark() throws -> [(value: Value, depth: Int)] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("no MARK") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }

        /// A tuple of entries, one level deeper than its deepest element.
        mutating func pushTuple(_ entries: [(value: Value, depth: Int)]) throws {
            try push(.tuple(entries.map(\.value)), depth: 1 + (entries.map(\.depth).max() ?? 0))
        }

        /// Grows a container's depth for what it now holds.
        mutating func deepen(_ depth: inout Int, by entries: [(value: Value, depth: Int)]) throws {
            depth = max(depth, 1 + (entries.map(\.depth).max() ?? 0))
            guard depth <= limits.depth else { throw fail("values nested deeper than \(limits.depth)") }
            stack[stack.count - 1].depth = depth
        }

        mutating func setMemo(_ index: Int) throws {
            guard stack.count > (marks.last ?? 0), let top = stack.last else { throw fail("PUT on an empty stack") }
            guard memo.count < limits.memo || memo[index] != nil else { throw fail("memo larger than \(limits.memo)") }
            memo[index] = top
        }

        mutating func getMemo(_ index: Int) throws {
            guard let v = memo[index] else { throw fail("GET of unset memo slot \(index)") }
            // A container's depth may have grown since it was memoised.
            switch v.value {
            case .list(let l): try push(v.value, depth: l.depth)
            case .dict(let d): try push(v.value, depth: d.depth)
            default: try push(v.value, depth: v.depth)
            }
        }

        mutating func run() throws -> Value {
            var operations = 0
            guard try byte() == 0x80 else { throw fail("not a pickle of protocol 2 or later (torch's legacy format?)") }
            let proto = try byte()
            guard (2...5).contains(proto) else { throw fail("pickle protocol \(proto)") }
            while true {
                operations += 1
                guard operations <= limits.operations else { throw fail("more than \(limits.operations) operations") }
                let op = try byte()
                switch op {
                case 0x2E:   // STOP
                    guard pos == p.count else { throw fail("\(p.count - pos) bytes after STOP") }
                    guard stack.count == 1, marks.isEmpty else { throw fail("STOP with \(stack.count) values on the stack") }
                    return stack[0].value
                case 0x28:   // MARK
                    guard marks.count < limits.depth else { throw fail("MARK nesting deeper than \(limits.depth)") }
                    marks.append(stack.count)
                case 0x4E: try push(.none)
                case 0x88: try push(.bool(true))
                case 0x89: try push(.bool(false))
                case 0x4B: try push(.int(Int(try le(1))))                                  // BININT1
                case 0x4D: try push(.int(Int(try le(2))))                                  // BININT2
                case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try le(4)))))       // BININT
                case 0x8A:   // LONG1
                    let n = Int(try byte())
                    guard n <= 8 else { throw fail("LONG1 of \(n) bytes") }
                    let raw = try le(n)
                    let shift = UInt64(64 - 8 * n)
                    try push(.int(n == 0 ? 0 : Int(Int64(bitPattern: raw << shift) >> Int64(shift))))
                case 0x47:   // BINFLOAT (big-endian)
                    let b = try take(8)
                    try push(.float(Double(bitPattern: (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(b[$1]) })))
                case 0x58:   // BINUNICODE
                    let n = Int(try le(4))
                    try push(.string(String(decoding: try take(n), as: UTF8.self)))
                case 0x55:   // SHORT_BINSTRING
                    let n = Int(try byte())
                    try push(.string(String(decoding: try take(n), as: UTF8.self)))
                case 0x71: try setMemo(Int(try le(1)))     // BINPUT
                case 0x72: try setMemo(Int(try le(4)))     // LONG_BINPUT
                case 0x68: try getMemo(Int(try le(1)))     // BINGET
                case 0x6A: try getMemo(Int(try le(4)))     // LONG_BINGET
                case 0x29: try push(.tuple([]))            // EMPTY_TUPLE
                case 0x85: try pushTuple([try popEntry()])   // TUPLE1
                case 0x86: let b = try popEntry(), a = try popEntry(); try pushTuple([a, b])
                case 0x87: let c = try popEntry(), b = try popEntry(), a = try popEntry(); try pushTuple([a, b, c])
                case 0x74: try pushTuple(try popMark())   // TUPLE
                case 0x5D: try push(.list(ListBox()))        // EMPTY_LIST
                case 0x7D: try push(.dict(DictBox()))        // EMPTY_DICT
                case 0x61, 0x65:   // APPEND, APPENDS
                    let items = op == 0x61 ? [try popEntry()] : try popMark()
                    guard stack.count > (marks.last ?? 0), case .list(let l) = stack[stack.count - 1].value else { throw fail("APPEND to a non-list") }
                    try deepen(&l.depth, by: items)
                    l.items += items.map(\.value)
                case 0x73, 0x75:   // SETITEM, SETITEMS
                    let items = op == 0x73 ? try { let v = try popEntry(), k = try popEntry(); return [k, v] }() : try popMark()
                    guard items.count % 2 == 0, stack.count > (marks.last ?? 0), case .dict(let d) = stack[stack.count - 1].value else {
                        throw fail("SETITEM on a non-dict")
                    }
                    try deepen(&d.depth, by: items)
                    for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i].value, items[i + 1].value)) }
                case 0x63:   // GLOBAL
                    let module = try line(), name = try line()
                    guard let g = Unpickler.globals["\(module)\n\(name)"] else {
                        if module == "torch", Unpickler.refusedStorages.contains(name) { throw fail("storage type torch.\(name) is not supported (float32, float64, int64, float16, bfloat16)") }
                        throw fail("global \(module).\(name) is not allowed")
                    }
                    try push(.global(g))
                case 0x52:   // REDUCE
                    let args = try popEntry(), callable = try pop()
                    guard case .global(let g) = callable, case .tuple(let a) = args.value else { throw fail("REDUCE of a non-global") }
                    try push(try apply(g, a), depth: args.depth)
                case 0x51:   // BINPERSID
                    try push(try persistent(try pop()))
                case 0x62:   // BUILD: state for an OrderedDict (torch's `_metadata`) only
                    let state = try popEntry()
                    guard stack.count > (marks.last ?? 0), case .dict(let d) = stack[stack.count - 1].value else { throw fail("BUILD on something other than an OrderedDict") }
                    try deepen(&d.depth, by: [state])
                    if case .dict(let s) = state.value { d.attributes += s.items } else if case .none = state.value {} else { throw fail("BUILD with a non-dict state") }
                default:
                    throw fail(String(format: "opcode 0x%02x is not allowed in a state dict", op))
                }
            }
        }

        /// ('storage', torch.XStorage, key, location, numel)
        func persistent(_ pid: Value) throws -> Value {
            guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0], case .global(.storageType(let dtype)) = t[1],
                  case .string(let key) = t[2], case .int(let count) = t[4] else { throw fail("persistent id is not a torch storage") }
            guard !key.isEmpty, key.allSatisfy(\.isNumber) else { throw fail("storage key \(key) is not a number") }
            guard count >= 0, count <= Int(Int32.max) * 64 else { throw fail("storage of \(count) elements") }
            return .storage(StorageRef(key: key, dtype: dtype, count: count))
        }

        func ints(_ v: Value, _ what: String) throws -> [Int] {
            guard case .tuple(let t) = v else { throw fail("\(what) is not a tuple") }
            guard t.count <= limits.rank else { throw fail("\(what) of rank \(t.count)") }
            return try t.map { guard case .int(let i) = $0, i >= 0 else { throw fail("\(what) has a negative or non-integer entry") }; return i }
        }

        func apply(_ g: Global, _ a: [Value]) throws -> Value {
            switch g {
            case .orderedDict:
                guard a.isEmpty else { throw fail("OrderedDict with arguments") }
                return .dict(DictBox())
            case .rebuildTensorV2:
                // (storage, offset, size, stride, requires_grad, hooks[, metadata])
                guard a.count == 6 || a.count == 7, case .storage(let s) = a[0], case .int(let offset) = a[1], offset >= 0 else {
                    throw fail("_rebuild_tensor_v2 with unexpected arguments")
                }
                if a.count == 7, case .dict(let m) = a[6], !m.items.isEmpty { throw fail("tensor metadata (conjugate/negative views) is not supported") }
                let shape = try ints(a[2], "tensor size"), strides = try ints(a[3], "tensor stride")
                guard shape.count == strides.count else { throw fail("size and stride of different ranks") }
                // In bounds: offset + Σ (size−1)·stride < numel, in checked arithmetic.
                if !shape.contains(0) {
                    var last = offset
                    for (n, st) in zip(shape, strides) {
                        let (product, o1) = (n - 1).multipliedReportingOverflow(by: st)
                        let (sum, o2) = last.addingReportingOverflow(product)
                        guard !o1, !o2 else { throw fail("tensor view overflows") }
                        last = sum
                    }
                    guard last < s.count else { throw fail("tensor view reaches element \(last) of a storage of \(s.count)") }
                }
                return .tensor(TensorRef(storage: s, offset: offset, shape: shape, strides: strides))
            case .rebuildParameter, .rebuildParameterWithState:
                guard a.count >= 3, case .tensor = a[0] else { throw fail("\(g) without a tensor") }
                return a[0]
            case .rebuildFromTypeV2:
                // (func, type, args, state): only plain tensors and parameters, no state.
                guard a.count == 4, case .global(let f) = a[0], case .global(let type) = a[1], type == .tensorType || type == .parameterType,
                      case .tuple(let args) = a[2] else { throw fail("_rebuild_from_type_v2 with unexpected arguments") }
                if case .dict(let state) = a[3], !state.items.isEmpty { throw fail("tensor subclass state is not supported") }
                return try apply(f, args)
            case .tensorType, .parameterType, .storageType:
                throw fail("\(g) cannot be called")
            }
        }
    }
}
