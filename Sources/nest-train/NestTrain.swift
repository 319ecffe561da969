import ArgumentParser

@main
struct NestTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nest-train", abstract: "NEST self-supervised speech pretraining.")
    func run() throws { print("nest-train: training is not implemented yet") }
}
