"""The reference training recipe in tf_keras (standalone Keras 2, as the reference code used it).

Shared by keras_train_reference.py (the parity fixture) and tf_train_bench.py (the speed reference), so
both run the same model, loss, optimiser and data. TensorFlow is passed in rather than imported here:
the callers configure it (threads, determinism, logging) before it initialises.

Model: Input 28x28x1 -> UpSampling2D(3) (nearest) -> keras.applications.MobileNetV2(84x84x1, alpha 1,
no top, no weights, average pool) as a nested model -> Dense(128, "dense"), no activation.
Loss: batch-all online triplet loss, margin 0.2, binary labels, i == j counted as a positive pair.
Optimiser: SGD, learning rate 1e-3, momentum 0.9 (v <- 0.9 v - lr g; w <- w + v).
Data: the Fashion-MNIST training set without ankle boots (9), pixels / 255, label 1 for sneakers (7).
"""
import numpy as np

from fashion_mnist import DATA_DIR, load_split

NORMAL_CLASS = 7      # sneaker: binary label 1
EXCLUDED_CLASS = 9    # ankle boot: the anomaly, never trained on
LEARNING_RATE = 1e-3
MOMENTUM = 0.9
MARGIN = 0.2


def training_set(data_dir: str = DATA_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recipe's training images [N,28,28,1] float32 in [0,1], binary labels [N] int32, and each
    image's index in the training file."""
    images, classes = load_split(data_dir, "train")
    index = np.flatnonzero(classes != EXCLUDED_CLASS)
    x = images[index].astype(np.float32)[..., None] / np.float32(255.0)
    y = (classes[index] == NORMAL_CLASS).astype(np.int32)
    return x, y, index


def build_embedder(keras):
    """The reference model with fresh (glorot/zeros/ones) weights from Keras's global seed."""
    inp = keras.Input((28, 28, 1), name="input")
    x = keras.layers.UpSampling2D(3)(inp)
    base = keras.applications.MobileNetV2(input_shape=(84, 84, 1), alpha=1.0, include_top=False,
                                          weights=None, pooling="avg")
    out = keras.layers.Dense(128, name="dense")(base(x))
    return keras.Model(inp, out, name="embedder")


def batch_all_triplet_loss(tf, labels, embeddings, margin: float = MARGIN):
    """Mean over every (positive pair, negative pair) of max(d_pos - d_neg + margin, 0).

    d: squared Euclidean distances by broadcasting (the diagonal is exactly 0); positives are the
    ordered pairs with equal labels, i == j included; negatives the ordered pairs with different
    labels. Labels may come as [N] or [N,1] (Keras's compiled losses reshape y_true to [N,1])."""
    labels = tf.reshape(labels, [-1])
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    d = tf.reduce_sum(tf.square(diff), axis=-1)
    same = tf.equal(labels[:, None], labels[None, :])
    d_pos = tf.boolean_mask(d, same)
    d_neg = tf.boolean_mask(d, tf.logical_not(same))
    return tf.reduce_mean(tf.maximum(d_pos[:, None] - d_neg[None, :] + margin, 0.0))


def sgd(keras):
    return keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)


def make_train_step(tf, model, optimizer):
    """One compiled step, as model.fit runs it on one batch: a training-mode forward (which also
    updates every BatchNormalization's moving statistics once), the loss, its gradient and the
    SGD update. Returns the step's embeddings, loss (both from before the update) and gradients."""
    @tf.function
    def step(x, labels):
        with tf.GradientTape() as tape:
            embeddings = model(x, training=True)
            loss = batch_all_triplet_loss(tf, labels, embeddings)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return embeddings, loss, grads
    return step
