"""Feature-extraction benchmark: what ``stdp-plugins train`` reports as
``feature_extraction`` (its featurizer, :func:`stdp_plugins.cli.spike_features`, on raw
digits, 512 at a time) vs the dense simulation of every time step one image at a time
(encoding included on both sides)."""

import torch

from _common import BaselineNet, parser, rate, report, setup, train_images, trained_net

from stdp_plugins.cli import extract_features, spike_features


def run(args):
    setup(args)
    images = train_images()
    net = trained_net(layers=2)
    digits = images[: args.images]

    def ours():
        return extract_features(net, digits)[0].shape[0]

    base = BaselineNet(net.conv1.weight, net.conv2.weight)
    base_digits = images[: args.baseline_images]

    def baseline():
        for x in net.encode(base_digits):
            base.features_image(x)
        return base_digits.shape[0]

    check = base_digits[:32]
    same = torch.equal(torch.stack([base.features_image(x) for x in net.encode(check)]).bool(),
                       spike_features(net)(check))
    return report("feature_extraction", rate(ours, 2), rate(baseline), args, identical_to_baseline=same)


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
