"""Layer-2 training benchmark (after layer-1 training): layer-1 output computed once per
epoch as the trainer does, event-driven batched STDP, vs dense one-image-at-a-time."""

import torch

from _common import BaselineNet, KheradpishehNet, TrainConfig, parser, rate, report, setup, train_images, trained_net


def run(args):
    setup(args)
    images = train_images()
    trained = trained_net(layers=1)
    inputs = trained.encode(images[: args.images])

    def ours():
        net = KheradpishehNet(seed=0)
        net.conv1.weight.data.copy_(trained.conv1.weight)
        layer2_in = torch.cat([net.layer_input(2, chunk) for chunk in inputs.split(512)])
        for x in layer2_in.split(args.batch_size):
            net.train_step(2, x, 0, TrainConfig.reduction)
        return inputs.shape[0]

    base_inputs = inputs[: args.baseline_images]

    def baseline():
        base = BaselineNet(trained.conv1.weight, trained.conv2.weight)
        for x in base_inputs:
            base.train_layer2_image(x)
        return base_inputs.shape[0]

    return report("layer2_training", rate(ours), rate(baseline), args)


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
