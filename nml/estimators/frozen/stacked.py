"""K heads of one architecture as stacked tensors: one batched forward pass for K fits.

Training K small heads one after the other spends most of its time outside arithmetic (Python,
operator dispatch, one optimiser step per fit); training them as one model with a leading head
dimension K spends it in a few batched matrix products. :class:`StackedHeads` takes K freshly
built heads (each initialised from its own seed, exactly as a lone fit builds it) plus their K
linear classifiers and holds their parameters as (K, ...) tensors:

* ``nn.Linear`` → ``torch.baddbmm`` on (K, M, in) activations, its weight kept transposed
  (K, in, out) so that neither the forward pass nor the weight gradient needs a strided copy;
* ``nn.BatchNorm1d`` → one ``F.batch_norm`` over K·d channels (each head's channels are
  normalised over its own M rows, with its own running statistics — the kernel a lone head uses);
* activations are elementwise; :class:`~nml.estimators.frozen.heads.ResidualHead` adds its
  per-head scale and skip connection.

Gradients of different heads never mix (their parameters are disjoint and the training loss is a
sum of per-head losses), and AdamW is elementwise, so each head follows its own trajectory; the
heads differ from lone fits only by float rounding (of the batched products, and of the fused
AdamW kernel, whose rounding depends on the size of the tensor it updates). :meth:`unstack` writes
head k's values back into its module, which is what the fitted estimator keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nml.estimators.frozen.heads import ResidualHead

_ACTIVATIONS = {nn.ReLU: F.relu, nn.GELU: F.gelu}


class NotStackable(TypeError):
    """A head contains a layer :class:`StackedHeads` cannot batch (the fit runs alone instead)."""


def _layers(head: nn.Module) -> tuple[list[nn.Module], bool]:
    """The sequence of layers of a head and whether it is residual."""
    if isinstance(head, nn.Identity):
        return [], False
    if isinstance(head, ResidualHead):
        return list(head.mlp), True
    if isinstance(head, nn.Sequential):
        return list(head), False
    if isinstance(head, nn.Linear):
        return [head], False
    raise NotStackable(f"cannot stack a head of type {type(head).__name__}")


def _stack(tensors: Sequence[torch.Tensor], *, grad: bool) -> torch.Tensor:
    out = torch.stack([t.detach() for t in tensors]).contiguous()
    return out.requires_grad_(grad)


class StackedHeads:
    """K heads h_k and linear classifiers g_k with stacked parameters; ``forward`` maps (K, M, D)
    features to ((K, M, D) representations z, (K, M, C) logits)."""

    def __init__(self, heads: Sequence[nn.Module], classifiers: Sequence[nn.Linear]):
        if not heads or len(heads) != len(classifiers):
            raise ValueError(f"need as many heads as classifiers (>= 1), got {len(heads)} and {len(classifiers)}")
        self.heads, self.classifiers = list(heads), list(classifiers)
        self.k = len(heads)
        structure = [_layers(h) for h in heads]
        layers0, self.residual = structure[0]
        kinds = [type(layer) for layer in layers0]
        for layers, residual in structure[1:]:
            if residual != self.residual or [type(layer) for layer in layers] != kinds:
                raise NotStackable("heads of different architectures cannot be stacked")
        # one op per layer: ("linear", W, b), ("bn", weight, bias, running_mean, running_var, layer),
        # ("act", fn); parameters are (K, ...) leaves of the autograd graph
        self.ops: list[tuple] = []
        self._params: list[torch.Tensor] = []
        for j, layer in enumerate(layers0):
            column = [structure[i][0][j] for i in range(self.k)]
            if isinstance(layer, nn.Linear):
                w = _stack([m.weight.T for m in column], grad=True)  # (K, in, out)
                b = _stack([m.bias for m in column], grad=True)
                self.ops.append(("linear", w, b))
                self._params += [w, b]
            elif isinstance(layer, nn.BatchNorm1d):
                if not (layer.affine and layer.track_running_stats and layer.momentum is not None):
                    raise NotStackable("only affine BatchNorm1d with running statistics and a momentum can be stacked")
                w = _stack([m.weight for m in column], grad=True)
                b = _stack([m.bias for m in column], grad=True)
                rm = _stack([m.running_mean for m in column], grad=False)
                rv = _stack([m.running_var for m in column], grad=False)
                self.ops.append(("bn", w, b, rm, rv, layer))
                self._params += [w, b]
            elif isinstance(layer, nn.Identity):
                continue
            elif type(layer) in _ACTIVATIONS:
                self.ops.append(("act", _ACTIVATIONS[type(layer)]))
            else:
                raise NotStackable(f"cannot stack a layer of type {type(layer).__name__}")
        self.scale = _stack([h.scale for h in heads], grad=True) if self.residual else None
        if self.scale is not None:
            self._params.append(self.scale)
        self.weight = _stack([c.weight.T for c in classifiers], grad=True)  # (K, D, C)
        self.bias = _stack([c.bias for c in classifiers], grad=True)
        self._params += [self.weight, self.bias]
        self._bn_steps = 0

    def parameters(self) -> list[torch.Tensor]:
        return list(self._params)

    def represent(self, f: torch.Tensor, *, train: bool) -> torch.Tensor:
        """z = h_k(f_k) for every head: (K, M, D) -> (K, M, D)."""
        x = f
        for op in self.ops:
            if op[0] == "linear":
                _, w, b = op
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            elif op[0] == "bn":
                _, w, b, rm, rv, layer = op
                k, m, d = x.shape
                # K·d channels, each over its own head's M rows: the lone head's kernel, batched
                flat = x.transpose(0, 1).reshape(m, k * d)
                out = F.batch_norm(flat, rm.view(-1), rv.view(-1), w.reshape(-1), b.reshape(-1),
                                   training=train, momentum=layer.momentum, eps=layer.eps)
                x = out.reshape(m, k, d).transpose(0, 1)
            else:
                x = op[1](x)
        if self.residual:
            x = self.scale.unsqueeze(1) * x + f
        return x

    def forward(self, f: torch.Tensor, *, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.represent(f, train=train)
        if train:
            self._bn_steps += 1
        logits = torch.baddbmm(self.bias.unsqueeze(1), z, self.weight)
        return z, logits

    def unstack(self, k: int) -> tuple[nn.Module, nn.Linear]:
        """Head k and classifier k as modules holding the trained values (on the heads' device)."""
        head, classifier = self.heads[k], self.classifiers[k]
        layers, _ = _layers(head)
        ops = iter(self.ops)
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, nn.Identity) or type(layer) in _ACTIVATIONS:
                    if type(layer) in _ACTIVATIONS:
                        next(ops)
                    continue
                op = next(ops)
                if op[0] == "linear":
                    layer.weight.copy_(op[1][k].T)
                    layer.bias.copy_(op[2][k])
                else:
                    layer.weight.copy_(op[1][k])
                    layer.bias.copy_(op[2][k])
                    layer.running_mean.copy_(op[3][k])
                    layer.running_var.copy_(op[4][k])
                    layer.num_batches_tracked.fill_(self._bn_steps)
            if self.scale is not None:
                head.scale.copy_(self.scale[k])
            classifier.weight.copy_(self.weight[k].T)
            classifier.bias.copy_(self.bias[k])
        return head, classifier
