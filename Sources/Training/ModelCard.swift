import Foundation

/// The model card a run keeps beside its model.onnx: how it was made and what it measured, epoch by epoch.
struct ModelCard {
    let state: TrainingState

    var markdown: String {
        let r = state.recipe
        var lines = [
            "# MobileNetV2 triplet embedder trained by Kizuki",
            "",
            "`model.onnx`: input `input` [N,28,28,1] (pixels / 255), output `embedding` [N,128]; the weights of epoch "
                + "\(state.bestEpoch.map(String.init) ?? "-"), the lowest training loss so far (as Keras's "
                + "`ModelCheckpoint(monitor=\"loss\", save_best_only=True)`). BatchNormalization is kept as nodes (inference mode uses "
                + "the moving statistics).",
            "",
            "## How it was made",
            "",
        ]
        lines += (state.commands ?? ["(not recorded)"]).map { "    \($0)" }
        lines += [
            "",
            "- Data: Fashion-MNIST training images without classes \(r.exclude)" + (r.trainImages.map { ", the first \($0) only" } ?? "")
                + "; " + (r.classLabels == true ? "each image labelled with its own class (`--labels classes`)." : "label 1 for class \(r.normal), 0 for the others."),
            "- Model: Input(28,28,1) → UpSampling2D(3) → MobileNetV2 (alpha 1, no top, average pooling) → Dense(128); Keras's "
                + "initialisers" + (r.initFrom.map { "; weights from `\($0)`" } ?? " from seed \(r.seed)") + ".",
            "- Embeddings: " + (r.l2Normalize == true ? "L2-normalised (an LpNormalization after the Dense head)" : "the Dense head's output as it is")
                + "; BatchNormalization momentum \(r.bnMomentum ?? MobileNetV2Embedder.momentum).",
            "- Loss: \(r.loss), margin \(r.margin). SGD: lr \(r.schedule.base), ÷10 at epochs \(r.schedule.drops), momentum \(r.momentum) "
                + "(Keras form); batch \(r.batch); a fresh permutation per epoch (seed \(r.seed)); \(r.threads) thread(s).",
            "",
            "## By epoch",
            "",
            "The AUC is the inference-mode AUC of that epoch's weights, class \(r.normal) against the unseen class "
                + "\(r.exclude.first.map(String.init) ?? "-") at up to 6,000 anchors: for information only, never used to choose.",
            "",
            "| epoch | loss | lr | seconds | images/s | AUC |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for e in state.history {
            let auc = e.auc.map { String(format: "%.4f", $0) } ?? "-"
            lines.append(String(format: "| %d | %.6f | %.0e | %.0f | %.1f | ", e.epoch, e.loss, Double(e.learningRate), e.seconds,
                                e.imagesPerSecond) + auc + " |")
        }
        if let inside = state.stepEvaluations, !inside.isEmpty {
            lines += ["", "Inside epochs (`--eval-every \(r.evalEvery ?? 0)`), the same AUC:", "", "| step | epoch | AUC |", "|---:|---:|---:|"]
            lines += inside.map { String(format: "| %d | %.2f | %.4f |", $0.step, $0.epoch, $0.auc) }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
