"""Layer-2 training benchmark (after layer-1 training): event-driven batched STDP vs
dense one-image-at-a-time.

The trainer computes layer 2's input (layer 1's pooled, inhibited spikes) once per run
and reuses it in every epoch, so ``ours`` times the training steps on that input and
``input_images_per_second`` times its one-off preparation; ``ours_including_input`` is
one epoch plus the preparation. The baseline recomputes layer 1 for every image, as a
one-image-at-a-time simulation does.
"""

import time

import torch

from _common import BaselineNet, KheradpishehNet, TrainConfig, parser, rate, report, setup, train_images, trained_net

from stdp_plugins.backends import kernel_threads


def run(args):
    setup(args)
    images = train_images()
    trained = trained_net(layers=1)
    inputs = trained.encode(images[: args.images])
    start = time.perf_counter()
    layer2_in = torch.cat([trained.layer_input(2, chunk) for chunk in inputs.split(512)])
    preparation = time.perf_counter() - start

    def ours():
        net = KheradpishehNet(seed=0)
        net.conv1.weight.data.copy_(trained.conv1.weight)
        with kernel_threads():  # as the trainer does
            for x in layer2_in.split(args.batch_size):
                net.train_step(2, x, 0, TrainConfig.reduction)
        return inputs.shape[0]

    base_inputs = inputs[: args.baseline_images]

    def baseline():
        base = BaselineNet(trained.conv1.weight, trained.conv2.weight)
        for x in base_inputs:
            base.train_layer2_image(x)
        return base_inputs.shape[0]

    ours_rate = rate(ours)
    n = inputs.shape[0]
    return report(
        "layer2_training", ours_rate, rate(baseline), args,
        input_images_per_second=round(n / preparation, 1),
        ours_including_input=round(n / (n / ours_rate + preparation), 1),
    )


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
