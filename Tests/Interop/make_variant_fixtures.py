"""Writes the small NeMo reference files under Tests/Interop/Resources/ for encoder options
that ../shared/fixtures does not cover: `self_attention_model: abs_pos` and
`rel_pos_local_attn` (three windows, since NeMo's local attention pairs positions with offsets
differently when left != right), `conv_norm_type` `instance_norm` and `group_norm4`, NeMo's
`striding` subsampling (its class default: full 3×3 convolutions, here with
`subsampling_conv_channels: -1`, and causal), and the
Transformer NEST recipes' `ASRTransformerEncoder` (post-LN, pre-LN, abs_pos with GELU).

Run with NeMo 3.0.0 (`make check-nemo` installs it in .venv-nemo):
    .venv-nemo/bin/python Tests/Interop/make_variant_fixtures.py [variant names]

Each `<name>.safetensors` holds the encoder's state dict under NeMo's keys (`encoder.…`), the
input features, the subsampled-and-encoded input (`pos_enc_output`), every layer's output and
the encoder output channels-last [B, T', D], fixed weights `loss_weights` of a scalar loss
sum(output · weights) over the valid frames, and that loss's gradient for every parameter
(`grad.encoder.…`). Metadata: `config` (the model config nest-train reads), `lengths`,
`encoded_lengths`, `loss`, and `made_with`.

ASRTransformerEncoder is in no released NeMo wheel (NeMo 3.0.0 lacks it). Its source on
NVIDIA-NeMo/Speech main (nemo/collections/asr/modules/asr_transformer_encoder.py and
parts/submodules/asr_transformer_modules.py) builds exactly ConformerEncoder's subsampling,
positional encoding, masks and layer loop, with `ASRTransformerLayer`s (NeMo's attention
modules and `PositionWiseFF`, LayerNorms after or before each residual add). The reference is
therefore NeMo 3.0.0's ConformerEncoder with its layers replaced by those layers, assembled
here from NeMo 3.0.0's own modules following that source.
"""

import json
import math
import pathlib
import sys

import torch
from safetensors.torch import save_file
from torch import nn

import nemo
from nemo.collections.asr.modules import ConformerEncoder
from nemo.collections.asr.modules.transformer.transformer_modules import PositionWiseFF
from nemo.collections.asr.parts.submodules.multi_head_attention import MultiHeadAttention, RelPositionMultiHeadAttention

OUT = pathlib.Path(__file__).resolve().parent / "Resources"
FEAT_IN, D_MODEL, HEADS, LAYERS, T, LENGTHS = 16, 32, 4, 2, 200, [200, 123]


class ASRTransformerLayer(nn.Module):
    """NVIDIA-NeMo/Speech main's ASRTransformerLayer (rel_pos and abs_pos, no cache), from
    NeMo 3.0.0's modules."""

    def __init__(self, d_model, d_ff, self_attention_model, n_heads, use_bias, post_ln, ffn_act):
        super().__init__()
        self.self_attention_model, self.post_ln = self_attention_model, post_ln
        self.norm_self_att = nn.LayerNorm(d_model)
        if self_attention_model == "rel_pos":
            self.self_attn = RelPositionMultiHeadAttention(n_head=n_heads, n_feat=d_model, dropout_rate=0.0,
                                                           pos_bias_u=None, pos_bias_v=None, use_bias=use_bias)
        else:
            self.self_attn = MultiHeadAttention(n_head=n_heads, n_feat=d_model, dropout_rate=0.0, use_bias=use_bias)
        self.norm_feed_forward = nn.LayerNorm(d_model)
        self.feed_forward = PositionWiseFF(hidden_size=d_model, inner_size=d_ff, ffn_dropout=0.0, hidden_act=ffn_act)
        # NeMo 3.0.0's PositionWiseFF has no use_bias argument (main's has): same layers, no bias.
        self.feed_forward.dense_in = nn.Linear(d_model, d_ff, bias=use_bias)
        self.feed_forward.dense_out = nn.Linear(d_ff, d_model, bias=use_bias)
        self.dropout = nn.Dropout(0.0)

    def attend(self, x, att_mask, pos_emb):
        if self.self_attention_model == "rel_pos":
            return self.self_attn(query=x, key=x, value=x, mask=att_mask, pos_emb=pos_emb)
        return self.self_attn(query=x, key=x, value=x, mask=att_mask)

    def forward(self, x, att_mask=None, pos_emb=None, pad_mask=None, cache_last_channel=None, cache_last_time=None):
        if self.post_ln:
            residual = self.norm_self_att(x + self.dropout(self.attend(x, att_mask, pos_emb)))
            return self.norm_feed_forward(residual + self.dropout(self.feed_forward(residual)))
        residual = x + self.dropout(self.attend(self.norm_self_att(x), att_mask, pos_emb))
        return residual + self.dropout(self.feed_forward(self.norm_feed_forward(residual)))


VARIANTS = {
    "conformer-abs-pos": dict(self_attention_model="abs_pos", conv_norm_type="batch_norm", xscaling=True, use_bias=True),
    "conformer-local-attn-4-2": dict(self_attention_model="rel_pos_local_attn", att_context_size=[4, 2], conv_norm_type="layer_norm",
                                     xscaling=False, use_bias=False),
    "conformer-local-attn-2-5": dict(self_attention_model="rel_pos_local_attn", att_context_size=[2, 5], conv_norm_type="batch_norm",
                                     xscaling=True, use_bias=True),
    "conformer-local-attn-3-3": dict(self_attention_model="rel_pos_local_attn", att_context_size=[3, 3], conv_norm_type="batch_norm",
                                     xscaling=True, use_bias=True),
    "conformer-instance-norm": dict(self_attention_model="rel_pos", conv_norm_type="instance_norm", xscaling=True, use_bias=True),
    "conformer-group-norm4": dict(self_attention_model="rel_pos", conv_norm_type="group_norm4", xscaling=False, use_bias=False),
    "conformer-striding": dict(self_attention_model="rel_pos", conv_norm_type="batch_norm", xscaling=True, use_bias=True,
                               subsampling="striding", subsampling_factor=4, subsampling_conv_channels=-1),
    "conformer-striding-causal": dict(self_attention_model="rel_pos", conv_norm_type="batch_norm", xscaling=True, use_bias=True,
                                      subsampling="striding", subsampling_factor=8, subsampling_conv_channels=8, causal_downsampling=True),
    "asr-transformer-post-ln": dict(asr_transformer=True, post_ln=True, self_attention_model="rel_pos", xscaling=True, use_bias=True),
    "asr-transformer-pre-ln": dict(asr_transformer=True, post_ln=False, self_attention_model="rel_pos", xscaling=False, use_bias=False,
                                   att_context_size=[4, 1], att_context_style="chunked_limited"),
    "asr-transformer-abs-pos-gelu": dict(asr_transformer=True, post_ln=True, self_attention_model="abs_pos", xscaling=True, use_bias=True,
                                         ffn_act="gelu"),
}


def encoder_keys(v):
    """The encoder section nest-train reads (and NeMo's constructor arguments)."""
    keys = dict(feat_in=FEAT_IN, n_layers=LAYERS, d_model=D_MODEL, n_heads=HEADS, subsampling=v.get("subsampling", "dw_striding"),
                subsampling_factor=v.get("subsampling_factor", 8), subsampling_conv_channels=v.get("subsampling_conv_channels", 8),
                causal_downsampling=v.get("causal_downsampling", False), ff_expansion_factor=2, self_attention_model=v["self_attention_model"],
                att_context_size=v.get("att_context_size", [-1, -1]), att_context_style=v.get("att_context_style", "regular"),
                xscaling=v["xscaling"], use_bias=v["use_bias"], untie_biases=True, pos_emb_max_len=5000,
                dropout=0.0, dropout_pre_encoder=0.0, dropout_emb=0.0, dropout_att=0.0)
    if v.get("asr_transformer"):
        keys.update(post_ln=v["post_ln"], ffn_act=v.get("ffn_act", "relu"))
    else:
        keys.update(conv_kernel_size=9, conv_norm_type=v["conv_norm_type"])
    return keys


def build(v):
    keys = encoder_keys(v)
    args = {k: val for k, val in keys.items() if k not in ("post_ln", "ffn_act")}
    if v.get("asr_transformer"):
        args.update(conv_kernel_size=9)
    encoder = ConformerEncoder(**args)
    if v.get("asr_transformer"):
        encoder.layers = nn.ModuleList([
            ASRTransformerLayer(D_MODEL, D_MODEL * 2, v["self_attention_model"], HEADS, v["use_bias"], v["post_ln"], keys["ffn_act"])
            for _ in range(LAYERS)])
    return encoder, keys


def perturb(encoder, generator):
    """Moves every parameter NeMo initialises to a constant (position biases, norms, BatchNorm
    statistics) away from it, so that parity tests them."""
    with torch.no_grad():
        for name, t in encoder.state_dict().items():
            if name.endswith("pos_bias_u") or name.endswith("pos_bias_v"):
                t.copy_(torch.randn(t.shape, generator=generator) * 0.1)
            elif ("norm" in name) and name.endswith(".weight"):
                t.copy_(torch.rand(t.shape, generator=generator) * 0.4 + 0.8)
            elif ("norm" in name) and name.endswith(".bias"):
                t.copy_(torch.rand(t.shape, generator=generator) * 0.2 - 0.1)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)


def config_yaml(name, v, keys):
    target = "nemo.collections.asr.modules." + ("ASRTransformerEncoder" if v.get("asr_transformer") else "ConformerEncoder")
    lines = ["# " + name + ": written by Tests/Interop/make_variant_fixtures.py", "model:", "  encoder:", f"    _target_: {target}"]
    lines += [f"    {k}: {json.dumps(val)}" for k, val in keys.items()]
    lines += ["  masking:", f"    feat_in: {FEAT_IN}", "  quantizer:", f"    feat_in: {FEAT_IN}", "    num_classes: 16", "    num_books: 1", "    code_dim: 16", f"    combine_time_steps: {keys['subsampling_factor']}",
              "    dist_fn: l2", "  decoder:", f"    feat_in: {D_MODEL}", "    num_classes: 16", "  loss:", f"    combine_time_steps: {keys['subsampling_factor']}", ""]
    return "\n".join(lines)


def make(name, v, seed):
    torch.manual_seed(seed)
    encoder, keys = build(v)
    generator = torch.Generator().manual_seed(seed + 1)
    perturb(encoder, generator)
    encoder.eval()
    features = torch.randn(len(LENGTHS), FEAT_IN, T, generator=generator)
    for b, n in enumerate(LENGTHS):
        features[b, :, n:] = 0
    lengths = torch.tensor(LENGTHS)
    captured = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o)) for k, layer in enumerate(encoder.layers)]
    hooks.append(encoder.pos_enc.register_forward_hook(lambda m, i, o: captured.__setitem__("pos_enc", o[0])))
    output, encoded_lengths = encoder(audio_signal=features, length=lengths)
    for h in hooks:
        h.remove()
    output = output.transpose(1, 2)  # [B, T', D]
    valid = (torch.arange(output.shape[1])[None, :] < encoded_lengths[:, None]).float()[..., None]
    weights = torch.randn(output.shape, generator=generator) * valid
    loss = (output * weights).sum()
    encoder.zero_grad()
    loss.backward()
    tensors = {"encoder." + k: t.detach().clone() for k, t in encoder.state_dict().items() if "num_batches_tracked" not in k}
    tensors.update({"grad.encoder." + k: p.grad.detach().clone() for k, p in encoder.named_parameters() if p.grad is not None})
    tensors["features"] = features.clone()
    tensors["pos_enc_output"] = captured["pos_enc"].detach().clone()
    for k in range(LAYERS):
        tensors[f"layer_{k:02d}"] = captured[k].detach().clone()
    tensors["output"] = output.detach().clone()
    tensors["loss_weights"] = weights.clone()
    metadata = {"config": config_yaml(name, v, keys), "lengths": json.dumps(LENGTHS),
                "encoded_lengths": json.dumps(encoded_lengths.tolist()), "loss": repr(loss.item()),
                "made_with": f"NeMo {nemo.__version__}, torch {torch.__version__}, seed {seed}"}
    OUT.mkdir(exist_ok=True)
    save_file(tensors, str(OUT / f"{name}.safetensors"), metadata=metadata)
    print(f"{name}: T'={output.shape[1]} lengths {encoded_lengths.tolist()} loss {loss.item():.6f} "
          f"{sum(t.numel() for t in tensors.values())} values")



if __name__ == "__main__":
    torch.set_num_threads(1)
    # With names, only those variants are written (each keeps its seed).
    wanted = set(sys.argv[1:])
    for i, (name, v) in enumerate(VARIANTS.items()):
        if not wanted or name in wanted:
            make(name, v, 1000 + i)
