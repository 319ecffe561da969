/// The one error type of nest-train: a message that names the file, line, key or tensor and
/// what was expected. Every layer throws it; callers print `description` as it is.
///
/// It lives in Basics, the target every error-throwing layer builds on.
public struct NestError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
    /// "file: what", the usual shape.
    public init(file: String, _ what: String) { description = "\(file): \(what)" }
}
