"""Feature-extraction benchmark: final spikes by one dense step per layer, batched, vs the
dense simulation of every time step one image at a time."""

import torch

from _common import BaselineNet, parser, rate, report, setup, train_images, trained_net


def run(args):
    setup(args)
    images = train_images()
    net = trained_net(layers=2)
    inputs = net.encode(images[: args.images])

    def ours():
        for chunk in inputs.split(512):
            net.features(chunk)
        return inputs.shape[0]

    base = BaselineNet(net.conv1.weight, net.conv2.weight)
    base_inputs = inputs[: args.baseline_images]

    def baseline():
        for x in base_inputs:
            base.features_image(x)
        return base_inputs.shape[0]

    same = torch.equal(
        torch.stack([base.features_image(x) for x in base_inputs[:32]]).bool(), net.features(base_inputs[:32])
    )
    return report("feature_extraction", rate(ours, 2), rate(baseline), args, identical_to_baseline=same)


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
