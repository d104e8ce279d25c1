"""Layer-2 training benchmark (after layer-1 training): event-driven batched STDP vs dense
one-image-at-a-time.

``ours`` is what ``stdp-plugins train`` reports as ``layer2_training`` in its
``metrics.json``: :class:`~stdp_plugins.training.LayerwiseTrainer`'s images/s of one epoch
of layer 2, which includes computing layer 2's input (layer 1's pooled, inhibited spikes)
once; ``steps_only`` times the training steps on that input alone. The baseline recomputes
layer 1 for every image, as a one-image-at-a-time simulation does.
"""

import time

from _common import BaselineNet, KheradpishehNet, TrainConfig, parser, rate, report, setup, train_images, trained_net

from stdp_plugins.backends import codes_to_times, kernel_threads
from stdp_plugins.training import LayerwiseTrainer


def run(args):
    setup(args)
    images = train_images()[: args.images]
    trained = trained_net(layers=1)

    def trainer():
        net = KheradpishehNet(seed=0)
        net.conv1.weight.data.copy_(trained.conv1.weight)
        config = TrainConfig(epochs=(0, 1), batch_size=args.batch_size, progress=False, checkpoint_every=0)
        return LayerwiseTrainer(net, images, config)

    cli = trainer()
    cli.layer_inputs(1)  # the CLI reports the encoding as its own phase
    cli.train()
    ours = cli.images_per_second()["layer2"]
    layer2_in = codes_to_times(next(cli.layer_inputs(2).chunks(len(images))))

    def steps():
        net = trainer().model
        with kernel_threads():  # as the trainer does
            for x in layer2_in.split(args.batch_size):
                net.train_step(2, x, 0, TrainConfig.reduction)
        return layer2_in.shape[0]

    base_inputs = trained.encode(images[: args.baseline_images])

    def baseline():
        base = BaselineNet(trained.conv1.weight, trained.conv2.weight)
        for x in base_inputs:
            base.train_layer2_image(x)
        return base_inputs.shape[0]

    return report("layer2_training", ours, rate(baseline), args, steps_only=round(rate(steps), 1))


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
