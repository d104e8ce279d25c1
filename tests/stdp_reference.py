"""The torch core's batch STDP update as the expected result of a learner's update."""

from stdp_plugins.learning import STDPConfig, batch_stdp_update, sequential_stdp_update_


def expected_delta(weight, pre_times, post_times, mask, config: STDPConfig, stride=1, padding=0,
                   reduction="sequential"):
    """The change the core makes to ``weight`` (any shape viewable as ``[C_out, C_in, k, k]``):
    ``clamp(w + batch_stdp_update)`` for ``"mean"``, ``sequential_stdp_update_`` otherwise."""
    w4 = weight.detach().reshape(weight.shape[0], -1, *weight.shape[2:]) if weight.dim() == 4 \
        else weight.detach()[:, :, None, None]
    bounds = (config.variant, config.weight_min, config.weight_max)
    if reduction == "mean":
        delta = batch_stdp_update(w4, pre_times, post_times, mask, config.lr_plus, config.lr_minus, *bounds,
                                  stride, padding)
        updated = (w4 + delta).clamp(config.weight_min, config.weight_max)
    else:
        updated = sequential_stdp_update_(w4.clone(), pre_times, post_times, mask, config.lr_plus,
                                          config.lr_minus, *bounds, stride, padding)
    return updated.view_as(weight) - weight.detach()
