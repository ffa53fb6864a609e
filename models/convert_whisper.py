"""Convert Whisper from CTranslate2 (faster-whisper) packaging into sherpa-onnx's ONNX pair.

    python models/convert_whisper.py --model-bin model.bin --tokenizer tokenizer.json \
        --vocabulary vocabulary.txt --out DIR

Build-time only (torch, onnx, onnxruntime's quantizer): `appliance models build` runs it in
a throwaway environment. Whisper is rebuilt here in the export-ready form sherpa-onnx
expects: an encoder that returns every decoder layer's cross-attention keys and values, and
a decoder that carries its self-attention cache as inputs and outputs. The mel length is
dynamic (sherpa pads the frames; no fixed 30 s). Output: encoder.onnx, decoder.onnx, their
int8 versions (dynamic MatMul quantisation) and tokens.txt.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:
    from .ct2 import read_ct2
except ImportError:              # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ct2 import read_ct2

log = logging.getLogger("convert_whisper")


def _t(arr: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _linear(w: np.ndarray, b: np.ndarray | None) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    lin.weight.data = _t(w)
    if b is not None:
        lin.bias.data = _t(b)
    return lin


def _norm(v: dict, prefix: str) -> nn.LayerNorm:
    ln = nn.LayerNorm(v[f"{prefix}/gamma"].shape[0], eps=1e-5)
    ln.weight.data = _t(v[f"{prefix}/gamma"])
    ln.bias.data = _t(v[f"{prefix}/beta"])
    return ln


def _attention(q: Tensor, k: Tensor, v: Tensor, heads: int, mask: Tensor | None) -> Tensor:
    n_batch, n_ctx, n_state = q.shape
    scale = (n_state // heads) ** -0.25
    q = q.view(n_batch, q.shape[1], heads, -1).permute(0, 2, 1, 3) * scale
    k = k.view(n_batch, k.shape[1], heads, -1).permute(0, 2, 3, 1) * scale
    v = v.view(n_batch, v.shape[1], heads, -1).permute(0, 2, 1, 3)
    qk = q @ k
    if mask is not None:
        qk = qk + mask
    w = F.softmax(qk.float(), dim=-1).to(q.dtype)
    return (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2)


class SelfAttention(nn.Module):
    def __init__(self, v: dict, prefix: str, heads: int) -> None:
        super().__init__()
        w, b = v[f"{prefix}/linear_0/weight"], v[f"{prefix}/linear_0/bias"]
        n = w.shape[1]
        self.query = _linear(w[:n], b[:n])
        self.key = _linear(w[n:2 * n], None)          # Whisper's key has no bias
        self.value = _linear(w[2 * n:], b[2 * n:])
        self.out = _linear(v[f"{prefix}/linear_1/weight"], v[f"{prefix}/linear_1/bias"])
        self.ln = _norm(v, f"{prefix}/layer_norm")
        self.heads = heads


class Mlp(nn.Module):
    def __init__(self, v: dict, prefix: str) -> None:
        super().__init__()
        self.ln = _norm(v, f"{prefix}/layer_norm")
        self.fc1 = _linear(v[f"{prefix}/linear_0/weight"], v[f"{prefix}/linear_0/bias"])
        self.fc2 = _linear(v[f"{prefix}/linear_1/weight"], v[f"{prefix}/linear_1/bias"])

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.ln(x))))


class EncoderBlock(nn.Module):
    def __init__(self, v: dict, i: int, heads: int) -> None:
        super().__init__()
        self.attn = SelfAttention(v, f"encoder/layer_{i}/self_attention", heads)
        self.mlp = Mlp(v, f"encoder/layer_{i}/ffn")

    def forward(self, x: Tensor) -> Tensor:
        a = self.attn
        h = a.ln(x)
        x = x + a.out(_attention(a.query(h), a.key(h), a.value(h), a.heads, None))
        return x + self.mlp(x)


class CrossKV(nn.Module):
    """A decoder layer's cross-attention projections of the audio features."""

    def __init__(self, v: dict, prefix: str) -> None:
        super().__init__()
        w, b = v[f"{prefix}/linear_1/weight"], v[f"{prefix}/linear_1/bias"]
        n = w.shape[1]
        self.key = _linear(w[:n], None)
        self.value = _linear(w[n:], b[n:])


class Encoder(nn.Module):
    """mel (N, n_mels, T) -> cross-attention K and V of every decoder layer."""

    def __init__(self, v: dict, n_layers: int, n_text_layers: int, heads: int) -> None:
        super().__init__()
        w1, w2 = v["encoder/conv1/weight"], v["encoder/conv2/weight"]
        self.conv1 = nn.Conv1d(w1.shape[1], w1.shape[0], 3, padding=1)
        self.conv1.weight.data, self.conv1.bias.data = _t(w1), _t(v["encoder/conv1/bias"])
        self.conv2 = nn.Conv1d(w2.shape[1], w2.shape[0], 3, stride=2, padding=1)
        self.conv2.weight.data, self.conv2.bias.data = _t(w2), _t(v["encoder/conv2/bias"])
        self.register_buffer("pos", _t(v["encoder/position_encodings/encodings"]))
        self.blocks = nn.ModuleList(EncoderBlock(v, i, heads) for i in range(n_layers))
        self.ln_post = _norm(v, "encoder/layer_norm")
        self.cross = nn.ModuleList(CrossKV(v, f"decoder/layer_{i}/attention")
                                   for i in range(n_text_layers))

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.pos[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        x = self.ln_post(x)
        return (torch.stack([c.key(x) for c in self.cross]),
                torch.stack([c.value(x) for c in self.cross]))


class DecoderBlock(nn.Module):
    def __init__(self, v: dict, i: int, heads: int) -> None:
        super().__init__()
        p = f"decoder/layer_{i}"
        self.attn = SelfAttention(v, f"{p}/self_attention", heads)
        self.cross_ln = _norm(v, f"{p}/attention/layer_norm")
        self.cross_query = _linear(v[f"{p}/attention/linear_0/weight"],
                                   v[f"{p}/attention/linear_0/bias"])
        self.cross_out = _linear(v[f"{p}/attention/linear_2/weight"],
                                 v[f"{p}/attention/linear_2/bias"])
        self.mlp = Mlp(v, f"{p}/ffn")
        self.heads = heads

    def forward(self, x: Tensor, k_cache: Tensor, v_cache: Tensor, cross_k: Tensor,
                cross_v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a = self.attn
        h = a.ln(x)
        k_cache[:, -x.shape[1]:, :] = a.key(h)
        v_cache[:, -x.shape[1]:, :] = a.value(h)
        x = x + a.out(_attention(a.query(h), k_cache, v_cache, self.heads, mask))
        h = self.cross_ln(x)
        x = x + self.cross_out(_attention(self.cross_query(h), cross_k, cross_v, self.heads, None))
        return x + self.mlp(x), k_cache, v_cache


class Decoder(nn.Module):
    """One decoding step with the self-attention cache passed in and out (sherpa-onnx)."""

    def __init__(self, v: dict, n_layers: int, heads: int) -> None:
        super().__init__()
        self.register_buffer("emb", _t(v["decoder/embeddings/weight"]))
        pos = _t(v["decoder/position_encodings/encodings"])
        self.register_buffer("pos", pos)
        n_ctx = pos.shape[0]
        self.register_buffer("mask", torch.empty(n_ctx, n_ctx).fill_(-np.inf).triu_(1))
        self.blocks = nn.ModuleList(DecoderBlock(v, i, heads) for i in range(n_layers))
        self.ln = _norm(v, "decoder/layer_norm")

    def forward(self, tokens: Tensor, self_k: Tensor, self_v: Tensor, cross_k: Tensor,
                cross_v: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = tokens.shape[-1]
        end = offset[0] + n
        x = F.embedding(tokens, self.emb) + self.pos[offset[0]: end]
        mask = self.mask[offset[0]: end, :end]
        for i, block in enumerate(self.blocks):
            k_cache = self_k[i, :, :end, :]
            v_cache = self_v[i, :, :end, :]
            x, k_cache, v_cache = block(x, k_cache, v_cache, cross_k[i], cross_v[i], mask)
            self_k[i, :, :end, :] = k_cache
            self_v[i, :, :end, :] = v_cache
        x = self.ln(x)
        logits = torch.matmul(self.emb, x.permute(0, 2, 1)).permute(0, 2, 1).float()
        return logits, self_k, self_v


class DecoderKV(nn.Module):
    """The appliance's own decoding step (asr/whisper.py): a batch of sequences, a
    self-attention cache that holds only what was decoded so far (sherpa-onnx's is a fixed
    448 positions, copied in and out at every step), and the logits of the last position
    only. The output projection is its own weight (the embedding transposed), so the
    quantizer makes it int8 like every other matrix. The encoder's cross-attention keys and
    values come in already laid out per head (keys scaled and transposed: (layer, n, head,
    head_dim, T); values (layer, n, head, T, head_dim)), prepared once per batch instead of
    at every step."""

    def __init__(self, dec: Decoder) -> None:
        super().__init__()
        self.blocks, self.ln = dec.blocks, dec.ln
        self.register_buffer("emb", dec.emb)
        self.register_buffer("pos", dec.pos)
        self.register_buffer("proj", dec.emb.t().contiguous().clone())
        n_ctx = dec.pos.shape[0]
        self.register_buffer("causal", torch.empty(n_ctx, n_ctx).fill_(-np.inf).triu_(1))

    def forward(self, tokens: Tensor, past_k: Tensor, past_v: Tensor, cross_k: Tensor,
                cross_v: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = tokens.shape[1]
        start = offset[0]
        x = F.embedding(tokens, self.emb) + self.pos[start: start + n]
        # new token i sees every cached position and the new ones up to itself
        mask = torch.cat([torch.zeros(n, past_k.shape[2]), self.causal[:n, :n]], dim=1)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            a = block.attn
            h = a.ln(x)
            k = torch.cat([past_k[i], a.key(h)], dim=1)
            v = torch.cat([past_v[i], a.value(h)], dim=1)
            x = x + a.out(_attention(a.query(h), k, v, block.heads, mask))
            h = block.cross_ln(x)
            q = block.cross_query(h)
            heads = block.heads
            q = q.view(q.shape[0], n, heads, -1).permute(0, 2, 1, 3) * (q.shape[-1] // heads) ** -0.25
            w = F.softmax(q @ cross_k[i], dim=-1)
            x = x + block.cross_out((w @ cross_v[i]).permute(0, 2, 1, 3).flatten(start_dim=2))
            x = x + block.mlp(x)
            keys.append(k)
            values.append(v)
        x = self.ln(x[:, -1, :])
        return torch.matmul(x, self.proj), torch.stack(keys), torch.stack(values)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte -> printable character table, reversed."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def write_tokens(vocabulary: Path, eot: int, out: Path) -> None:
    """tokens.txt: base64 of each ordinary token's raw bytes, a space, its id.

    The vocabulary is one token per line (vocabulary.txt) or a JSON list (vocabulary.json).
    """
    table = _byte_decoder()
    text = vocabulary.read_text(encoding="utf-8")
    lines = json.loads(text) if vocabulary.suffix == ".json" else text.split("\n")
    with open(out, "w", encoding="utf-8") as fh:
        for i, tok in enumerate(lines[:eot]):
            raw = bytes(table[ch] for ch in tok)
            fh.write(f"{base64.b64encode(raw).decode()} {i}\n")


def special_tokens(tokenizer: Path) -> dict[str, int]:
    added = json.loads(tokenizer.read_text(encoding="utf-8"))["added_tokens"]
    return {t["content"]: t["id"] for t in added}


def metadata(v: dict, dims: dict, specials: dict[str, int]) -> dict[str, str]:
    langs = sorted((i, c[2:-2]) for c, i in specials.items()
                   if specials["<|startoftranscript|>"] < i < specials["<|translate|>"])
    sot = specials["<|startoftranscript|>"]
    sot_sequence = [sot, specials["<|en|>"], specials["<|transcribe|>"]]
    meta = {
        "model_type": "whisper", "version": "1", "maintainer": "call-appliance",
        **{k: str(x) for k, x in dims.items()},
        "sot": sot, "sot_index": 0, "eot": specials["<|endoftext|>"], "blank_id": 220,
        "is_multilingual": int(len(langs) > 1),
        "no_speech": specials.get("<|nospeech|>", specials.get("<|nocaptions|>")),
        "transcribe": specials["<|transcribe|>"], "translate": specials["<|translate|>"],
        "sot_prev": specials["<|startofprev|>"], "sot_lm": specials["<|startoflm|>"],
        "no_timestamps": specials["<|notimestamps|>"],
        "sot_sequence": ",".join(map(str, sot_sequence)),
        "all_language_tokens": ",".join(str(i) for i, _ in langs),
        "all_language_codes": ",".join(c for _, c in langs),
    }
    return {k: str(x) for k, x in meta.items()}


@torch.no_grad()
def convert(model_bin: Path, tokenizer: Path, vocabulary: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    spec, v = read_ct2(model_bin)
    if spec != "WhisperSpec":
        raise SystemExit(f"{model_bin}: a {spec}, not a Whisper model")
    n_enc, n_dec = (len({m.group(1) for k in v if (m := re.match(rf"{part}/layer_(\d+)/", k))})
                    for part in ("encoder", "decoder"))
    heads_a, heads_t = int(v["encoder/num_heads"]), int(v["decoder/num_heads"])
    state = v["encoder/conv1/weight"].shape[0]
    dims = {
        "n_mels": v["encoder/conv1/weight"].shape[1],
        "n_audio_ctx": v["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": state, "n_audio_head": heads_a, "n_audio_layer": n_enc,
        "n_vocab": v["decoder/embeddings/weight"].shape[0],
        "n_text_ctx": v["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": v["decoder/embeddings/weight"].shape[1],
        "n_text_head": heads_t, "n_text_layer": n_dec,
    }
    log.info("model %s", dims)
    specials = special_tokens(tokenizer)
    encoder = Encoder(v, n_enc, n_dec, heads_a).eval()
    decoder = Decoder(v, n_dec, heads_t).eval()

    mel = torch.randn(1, dims["n_mels"], 3000)
    cross_k, cross_v = encoder(mel)
    enc_path, dec_path = out / "encoder.onnx", out / "decoder.onnx"
    torch.onnx.export(encoder, (mel,), str(enc_path), opset_version=13, dynamo=False,
                      input_names=["mel"], output_names=["n_layer_cross_k", "n_layer_cross_v"],
                      dynamic_axes={"mel": {0: "n_audio", 2: "T"},
                                    "n_layer_cross_k": {1: "n_audio", 2: "T"},
                                    "n_layer_cross_v": {1: "n_audio", 2: "T"}})
    cache = torch.zeros(n_dec, 1, dims["n_text_ctx"], dims["n_text_state"])
    tokens = torch.tensor([[specials["<|startoftranscript|>"]] * 3])
    _, k1, v1 = decoder(tokens, cache.clone(), cache.clone(), cross_k, cross_v,
                        torch.zeros(1, dtype=torch.int64))
    torch.onnx.export(decoder, (tokens[:, :1], k1, v1, cross_k, cross_v,
                                torch.tensor([3], dtype=torch.int64)),
                      str(dec_path), opset_version=13, dynamo=False,
                      input_names=["tokens", "in_n_layer_self_k_cache", "in_n_layer_self_v_cache",
                                   "n_layer_cross_k", "n_layer_cross_v", "offset"],
                      output_names=["logits", "out_n_layer_self_k_cache",
                                    "out_n_layer_self_v_cache"],
                      dynamic_axes={"tokens": {0: "n_audio", 1: "n_tokens"},
                                    "in_n_layer_self_k_cache": {1: "n_audio"},
                                    "in_n_layer_self_v_cache": {1: "n_audio"},
                                    "n_layer_cross_k": {1: "n_audio", 2: "T"},
                                    "n_layer_cross_v": {1: "n_audio", 2: "T"}})
    step = DecoderKV(decoder).eval()
    sot = tokens.shape[1]
    past = torch.zeros(n_dec, 2, sot, dims["n_text_state"])
    heads, t = heads_t, cross_k.shape[2]
    ck = cross_k.repeat(1, 2, 1, 1).view(n_dec, 2, t, heads, -1)
    ck = (ck * (dims["n_text_state"] // heads) ** -0.25).permute(0, 1, 3, 4, 2).contiguous()
    cv = cross_v.repeat(1, 2, 1, 1).view(n_dec, 2, t, heads, -1).permute(0, 1, 3, 2, 4).contiguous()
    torch.onnx.export(step, (tokens[:, :1].repeat(2, 1), past, past.clone(), ck, cv,
                             torch.tensor([sot], dtype=torch.int64)),
                      str(out / "decoder_kv.onnx"), opset_version=13, dynamo=False,
                      input_names=["tokens", "past_k", "past_v", "cross_k", "cross_v", "offset"],
                      output_names=["logits", "new_k", "new_v"],
                      dynamic_axes={"tokens": {0: "n", 1: "n_tokens"},
                                    "past_k": {1: "n", 2: "past"}, "past_v": {1: "n", 2: "past"},
                                    "cross_k": {1: "n", 4: "T"}, "cross_v": {1: "n", 3: "T"},
                                    "logits": {0: "n"}, "new_k": {1: "n", 2: "total"},
                                    "new_v": {1: "n", 2: "total"}})
    model = onnx.load(str(enc_path))
    for key, value in metadata(v, dims, specials).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(enc_path))
    # Per-channel scales (one per output column): per-tensor int8 cost Whisper 4 points of
    # WER on telephone Russian (21.8 % against 17.5 % in fp32), per-channel about 2.
    # Unsigned weights (u8 x u8): with signed weights, onnxruntime multiplies u8 activations
    # by s8 weights with VPMADDUBSW on CPUs that have AVX2 but no VNNI, whose int16 sums
    # saturate. The same model read 20 % WER on a VNNI CPU and 49 % on an AVX2-only one
    # (loops, English "translations"); u8 weights read 21 % on the latter at the same speed.
    # The box must not depend on which CPU it was sold with.
    for name in ("encoder", "decoder", "decoder_kv"):
        quantize_dynamic(str(out / f"{name}.onnx"), str(out / f"{name}.int8.onnx"),
                         op_types_to_quantize=["MatMul", "Gather"] if name == "decoder_kv"
                         else ["MatMul"], weight_type=QuantType.QUInt8, per_channel=True)
    (out / "decoder_kv.onnx").unlink()     # only its int8 form is used (asr/whisper.py)
    write_tokens(vocabulary, specials["<|endoftext|>"], out / "tokens.txt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-bin", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--vocabulary", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    convert(args.model_bin, args.tokenizer, args.vocabulary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
