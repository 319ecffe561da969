"""Writes Tests/Interop/Resources/nest-post-conv.safetensors: one NEST train step of NeMo 3.0.0's
EncDecDenoiseMaskedTokenPredModel with `mask_position: post_conv` (masking after the
subsampling, NeMo's ConvFeatureMaksingWrapper), for `PostConvMaskingTests`.

    .venv-nemo/bin/python Tests/Interop/make_post_conv_fixture.py

The model is ../shared/fixtures/nemo-tiny's bare model config with one layer, `mask_position: post_conv`
and `quantizer.combine_time_steps: 1` (NeMo rewrites loss.combine_time_steps to 1, the masking
and quantizer feat_in to d_model and masking.block_size to block_size // 8, but not the
quantizer's combine_time_steps: with 8 its quantizer stacks 8 encoder frames and fails unless T'
is a multiple of 8), seeded NeMo initialisation, then every LayerNorm, position bias and
BatchNorm statistic perturbed. Inputs are random clean features and a noisy copy, given as
processed signals; the step runs in train mode (BatchNorm on batch statistics, dropout 0), with
NeMo drawing the mask. NeMo's forward hands pre_encode the clean features untransposed and
fails (see below), so the script runs that branch's lines with the transpose added. Stored: the state dict (NeMo keys), `clean`, `noisy`, `frame_mask`
[B, T'] (the drawn mask on encoder frames), `tokens` [B, T'], `loss`, and `grad.<key>` for
every parameter that received a gradient; metadata `config` (the config as given, before
NeMo's rewriting), `lengths`, `encoded_lengths`, `loss`, `no_grad` (trainable parameters
without a gradient: the subsampling, whose masked output NeMo detaches) and `made_with`.
"""

import json
import pathlib

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

import nemo
from nemo.collections.asr.models.ssl_models import EncDecDenoiseMaskedTokenPredModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/Interop/Resources/nest-post-conv.safetensors"
LENGTHS, T, SEED = [256, 170], 256, 4321


def main():
    torch.set_num_threads(1)
    cfg = OmegaConf.load(ROOT.parent / "shared/fixtures/nemo-tiny/nemo-tiny.config.yaml")
    cfg.mask_position = "post_conv"
    cfg.encoder.n_layers = 1   # one layer is enough to check the masking, and keeps the file small
    cfg.quantizer.combine_time_steps = 1
    cfg.masking.mask_prob = 0.05
    config_text = OmegaConf.to_yaml(cfg)
    torch.manual_seed(SEED)
    model = EncDecDenoiseMaskedTokenPredModel(cfg=cfg)
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("pos_bias_u") or name.endswith("pos_bias_v"):
                t.copy_(torch.randn(t.shape, generator=generator) * 0.1)
            elif "norm" in name and name.endswith(".weight"):
                t.copy_(torch.rand(t.shape, generator=generator) * 0.4 + 0.8)
            elif "norm" in name and name.endswith(".bias"):
                t.copy_(torch.rand(t.shape, generator=generator) * 0.2 - 0.1)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
    weights = {k: t.detach().clone() for k, t in model.state_dict().items() if "num_batches_tracked" not in k}
    features = cfg.preprocessor.features
    clean = torch.randn(len(LENGTHS), features, T, generator=generator)
    noisy = clean + 0.3 * torch.randn(clean.shape, generator=generator)
    for b, n in enumerate(LENGTHS):
        clean[b, :, n:] = 0
        noisy[b, :, n:] = 0
    lengths = torch.tensor(LENGTHS)
    model.train()
    torch.manual_seed(SEED + 2)
    # NeMo's post_conv branch of EncDecDenoiseMaskedTokenPredModel.forward (3.0.0 and main),
    # with one fix: NeMo hands the clean features [B, F, T] to pre_encode, which takes [B, T, F]
    # (the encoder transposes before calling it), so NeMo fails on any T != F. Here they are
    # transposed, as the encoder does for the noisy ones.
    feats, _ = model.pre_encoder.pre_encode(x=clean.transpose(1, 2), lengths=lengths)
    _, tokens = model.quantizer(input_signal=feats.transpose(1, 2))
    model.pre_encoder.set_masking_enabled(apply_mask=True)
    encoded, encoded_len = model.encoder(audio_signal=noisy, length=lengths)
    masks = model.pre_encoder.get_current_mask()
    log_probs = model.decoder(encoder_output=encoded)
    loss = model.loss(masks=masks, decoder_outputs=log_probs, targets=tokens, decoder_lengths=encoded_len)
    loss.backward()
    frame_mask = masks[:, 0, :]  # [B, T'] (masks repeat over the d_model channels)
    assert torch.equal(masks, frame_mask[:, None, :].expand_as(masks))
    grads = {"grad." + k: p.grad.detach().clone() for k, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    no_grad = [k for k, p in model.named_parameters() if p.requires_grad and p.grad is None]
    tensors = dict(weights, **grads, clean=clean, noisy=noisy, frame_mask=frame_mask.detach().clone().float(),
                   tokens=tokens.reshape(len(LENGTHS), -1).float())
    metadata = {"config": config_text, "lengths": json.dumps(LENGTHS), "encoded_lengths": json.dumps(encoded_len.tolist()),
                "loss": repr(loss.item()), "no_grad": json.dumps(no_grad),
                "made_with": f"NeMo {nemo.__version__}, torch {torch.__version__}, seed {SEED}"}
    save_file(tensors, str(OUT), metadata=metadata)
    print(f"T'={frame_mask.shape[1]} lengths {encoded_len.tolist()} masked frames {int(frame_mask.sum())} loss {loss.item():.6f}; "
          f"no gradient: {len(no_grad)} parameters ({', '.join(no_grad[:3])}, …)")


if __name__ == "__main__":
    main()
