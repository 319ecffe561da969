/// Named arrays in, whatever the file: the one interface through which weights are loaded
/// (nest-train checkpoints, foreign HDF5 state dicts, and further formats as they come).
public protocol TensorSource {
    /// What and where the arrays come from, for messages ("nest-train checkpoint run/step-10.h5").
    var origin: String { get }
    /// The names of the arrays, in the file's order.
    func names() throws -> [String]
    /// The shape, without reading the values (so a loader checks everything before it reads).
    func shape(_ name: String) throws -> [Int]
    func read(_ name: String) throws -> ArrayData
}
