/// The one error type of nest-train: a message that names the file, line, key or tensor and
/// what was expected. Every layer throws it; callers print `description` as it is.
///
/// It lives in Formats, the lowest target every error-throwing layer (HDF5, Audio, Training)
/// builds on, since nearly every error is about input in some file format.
public struct NestError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
    /// "file: what", the usual shape.
    public init(file: String, _ what: String) { description = "\(file): \(what)" }
}
