"""Counts the parameters of NeMo's six NEST recipes at their real sizes with NeMo 3.0.0's own
modules (the model's trainable and frozen parameters: encoder, decoder, quantizer, masking), for
`RecipeParameterCountTests`. The encoder sections below are the recipes' values
(examples/asr/conf/ssl/nest/ in NVIDIA-NeMo/Speech); every recipe has 128 mel features, 8192
classes, one codebook of dimension 16 and dw_striding subsampling by 8 with 256 channels.
ASRTransformerEncoder (in no released wheel) is NeMo 3.0.0's ConformerEncoder with its layers
replaced, as in make_variant_fixtures.py.

    .venv-nemo/bin/python Tests/Interop/count_recipe_parameters.py
"""

import torch
from torch import nn

from nemo.collections.asr.modules import ConformerEncoder, MultiSoftmaxDecoder, RandomBlockMasking, RandomProjectionVectorQuantizer
from make_variant_fixtures import ASRTransformerLayer

COMMON = dict(feat_in=128, subsampling="dw_striding", subsampling_factor=8, subsampling_conv_channels=256, ff_expansion_factor=4,
              n_heads=8, self_attention_model="rel_pos", untie_biases=True, pos_emb_max_len=5000)
RECIPES = {
    "nest_fast-conformer.yaml": dict(n_layers=17, d_model=512, use_bias=True, xscaling=True, conv_kernel_size=9, feat_in=80),
    "nest_fast-conformer-v2-xlarge.yaml": dict(n_layers=24, d_model=1024, use_bias=False, xscaling=False, conv_kernel_size=9),
    "nest_streaming_fast-conformer-v2-xlarge.yaml": dict(n_layers=24, d_model=1024, use_bias=False, xscaling=False, conv_kernel_size=9,
                                                         causal_downsampling=True, conv_norm_type="layer_norm", conv_context_size="causal",
                                                         att_context_size=[70, 13], att_context_style="chunked_limited"),
    "nest_transformer.yaml": dict(asr=True, n_layers=33, d_model=512, use_bias=True, xscaling=True, post_ln=True),
    "nest_transformer_xlarge.yaml": dict(asr=True, n_layers=44, d_model=1024, use_bias=False, xscaling=False, post_ln=False),
    "nest_streaming_transformer_xlarge.yaml": dict(asr=True, n_layers=44, d_model=1024, use_bias=False, xscaling=False, post_ln=True,
                                                   causal_downsampling=True, att_context_size=[70, 13], att_context_style="chunked_limited"),
}


def count(recipe):
    args = dict(COMMON, **{k: v for k, v in recipe.items() if k not in ("asr", "post_ln")})
    feat_in, d = args["feat_in"], args["d_model"]
    encoder = ConformerEncoder(**args)
    if recipe.get("asr"):
        encoder.layers = nn.ModuleList([ASRTransformerLayer(d, 4 * d, "rel_pos", 8, recipe["use_bias"], recipe["post_ln"], "relu")
                                        for _ in range(recipe["n_layers"])])
    parts = [encoder, MultiSoftmaxDecoder(feat_in=d, num_classes=8192, num_decoders=1, use_bias=True),
             RandomProjectionVectorQuantizer(feat_in=feat_in, code_dim=16, num_classes=8192, num_books=1, dist_fn="l2", combine_time_steps=8),
             RandomBlockMasking(feat_in=feat_in, block_size=40, mask_prob=0.01)]
    return sum(p.numel() for m in parts for p in m.parameters()), sum(p.numel() for p in encoder.parameters())


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name, recipe in RECIPES.items():
        total, encoder = count(recipe)
        print(f"{name}: {total:,} parameters ({encoder:,} in the encoder)")
