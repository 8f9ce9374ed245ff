"""detectron2's ViTDet, MViTv2 and Swin checkpoints load with strict=True, no conversion.

The state dicts here are written out from the structure detectron2 documents (its module and
parameter names, shapes from the configs' arguments), not from det's modules: if a name or shape
of det differed, loading would report it as missing, unexpected or mismatched. Full-size models
are built on the meta device (no memory, no init time) and loaded with ``assign=True``.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from det.backbones import FPN, LastLevelMaxPool
from det.backbones.vit import MViT, SimpleFeaturePyramid, SwinTransformer, ViT
from det.checkpoint import DetectionCheckpointer

LN = partial(nn.LayerNorm, eps=1e-6)


def linear(prefix, n_out, n_in, bias=True):
    yield f"{prefix}.weight", (n_out, n_in)
    if bias:
        yield f"{prefix}.bias", (n_out,)


def layer_norm(prefix, n):
    yield f"{prefix}.weight", (n,)
    yield f"{prefix}.bias", (n,)


def vitdet_keys(*, embed_dim, depth, num_heads, window_size, window_blocks, residual_blocks=(),
                img_size=1024, patch=16, pretrain=224, out_channels=256):
    """SimpleFeaturePyramid(net=ViT(...), scale_factors=(4, 2, 1, 0.5), norm="LN") of
    detectron2's common/models/mask_rcnn_vitdet.py."""
    D, head = embed_dim, embed_dim // num_heads
    yield "net.pos_embed", (1, (pretrain // patch) ** 2 + 1, D)
    yield "net.patch_embed.proj.weight", (D, 3, patch, patch)
    yield "net.patch_embed.proj.bias", (D,)
    for i in range(depth):
        b = f"net.blocks.{i}"
        size = window_size if i in window_blocks else img_size // patch
        yield from layer_norm(f"{b}.norm1", D)
        yield from linear(f"{b}.attn.qkv", 3 * D, D)
        yield from linear(f"{b}.attn.proj", D, D)
        yield f"{b}.attn.rel_pos_h", (2 * size - 1, head)
        yield f"{b}.attn.rel_pos_w", (2 * size - 1, head)
        yield from layer_norm(f"{b}.norm2", D)
        yield from linear(f"{b}.mlp.fc1", 4 * D, D)
        yield from linear(f"{b}.mlp.fc2", D, 4 * D)
        if i in residual_blocks:
            yield f"{b}.residual.conv1.weight", (D // 2, D, 1, 1)
            yield from layer_norm(f"{b}.residual.norm1", D // 2)
            yield f"{b}.residual.conv2.weight", (D // 2, D // 2, 3, 3)
            yield from layer_norm(f"{b}.residual.norm2", D // 2)
            yield f"{b}.residual.conv3.weight", (D, D // 2, 1, 1)
            yield from layer_norm(f"{b}.residual.norm3", D)
    C = out_channels

    def convs(prefix, first, n_in):  # 1x1 then 3x3 conv, LN inside each (no conv bias)
        yield f"{prefix}.{first}.weight", (C, n_in, 1, 1)
        yield from layer_norm(f"{prefix}.{first}.norm", C)
        yield f"{prefix}.{first + 1}.weight", (C, C, 3, 3)
        yield from layer_norm(f"{prefix}.{first + 1}.norm", C)

    # scale 4: deconv, LN, GELU, deconv (ConvTranspose2d weights are (in, out, k, k))
    yield "simfp_2.0.weight", (D, D // 2, 2, 2)
    yield "simfp_2.0.bias", (D // 2,)
    yield from layer_norm("simfp_2.1", D // 2)
    yield "simfp_2.3.weight", (D // 2, D // 4, 2, 2)
    yield "simfp_2.3.bias", (D // 4,)
    yield from convs("simfp_2", 4, D // 4)
    yield "simfp_3.0.weight", (D, D // 2, 2, 2)
    yield "simfp_3.0.bias", (D // 2,)
    yield from convs("simfp_3", 1, D // 2)
    yield from convs("simfp_4", 0, D)
    yield from convs("simfp_5", 1, D)  # simfp_5.0 is the max-pool


def mvit_keys(*, embed_dim, depth, num_heads, last_block_indexes, img_size=224, kv_stride=4, prefix=""):
    """MViT(...) of detectron2's MViTv2 configs: stage s in 2..5 has embed_dim * 2**(s-2) channels
    and num_heads * 2**(s-2) heads; a stage's first block pools q by 2 and changes channels
    (``proj``); k/v pooling stride: ``kv_stride`` in stage 2, halved per stage down to 1, doubled
    on the last blocks of stages 3 and 4; relative position tables have
    2 * max(grid // q_stride, grid // kv_stride) - 1 rows, grid = the block's input grid."""
    yield f"{prefix}patch_embed.proj.weight", (embed_dim, 3, 7, 7)
    yield f"{prefix}patch_embed.proj.bias", (embed_dim,)
    stage_of = [sum(i > last for last in last_block_indexes) for i in range(depth)]
    head = embed_dim // num_heads  # channels per head, the same in every stage
    grid = img_size // 4
    for i in range(depth):
        b = f"{prefix}blocks.{i}"
        dim_out = embed_dim * 2 ** stage_of[i]
        dim = embed_dim * 2 ** stage_of[i - 1] if i > 0 else embed_dim
        q_stride = 2 if i > 0 and stage_of[i] != stage_of[i - 1] else 1
        stage_kv = max(kv_stride // 2 ** stage_of[i], 1)
        kv = stage_kv * 2 if i in last_block_indexes[1:3] else stage_kv
        rows = 2 * max(grid // q_stride, grid // kv) - 1
        yield from layer_norm(f"{b}.norm1", dim)
        yield from linear(f"{b}.attn.qkv", 3 * dim_out, dim)
        yield from linear(f"{b}.attn.proj", dim_out, dim_out)
        for t in "qkv":
            yield f"{b}.attn.pool_{t}.weight", (head, 1, 3, 3)  # depthwise
            yield from layer_norm(f"{b}.attn.norm_{t}", head)
        yield f"{b}.attn.rel_pos_h", (rows, head)
        yield f"{b}.attn.rel_pos_w", (rows, head)
        yield from layer_norm(f"{b}.norm2", dim_out)
        yield from linear(f"{b}.mlp.fc1", 4 * dim_out, dim_out)
        yield from linear(f"{b}.mlp.fc2", dim_out, 4 * dim_out)
        if dim != dim_out:
            yield from linear(f"{b}.proj", dim_out, dim)
        grid //= q_stride
    for s in range(4):
        yield from layer_norm(f"{prefix}scale{s + 2}_norm", embed_dim * 2**s)


def swin_keys(*, embed_dim, depths, num_heads, window=7, prefix=""):
    """SwinTransformer(...) of ViTDet's Swin configs (patch 4, patch norm, outputs p0..p3)."""
    yield f"{prefix}patch_embed.proj.weight", (embed_dim, 3, 4, 4)
    yield f"{prefix}patch_embed.proj.bias", (embed_dim,)
    yield from layer_norm(f"{prefix}patch_embed.norm", embed_dim)
    for s, (depth, heads) in enumerate(zip(depths, num_heads)):
        C = embed_dim * 2**s
        for j in range(depth):
            b = f"{prefix}layers.{s}.blocks.{j}"
            yield from layer_norm(f"{b}.norm1", C)
            yield f"{b}.attn.relative_position_bias_table", ((2 * window - 1) ** 2, heads)
            yield f"{b}.attn.relative_position_index", (window**2, window**2)
            yield from linear(f"{b}.attn.qkv", 3 * C, C)
            yield from linear(f"{b}.attn.proj", C, C)
            yield from layer_norm(f"{b}.norm2", C)
            yield from linear(f"{b}.mlp.fc1", 4 * C, C)
            yield from linear(f"{b}.mlp.fc2", C, 4 * C)
        if s < len(depths) - 1:
            yield f"{prefix}layers.{s}.downsample.reduction.weight", (2 * C, 4 * C)
            yield from layer_norm(f"{prefix}layers.{s}.downsample.norm", 4 * C)
        yield from layer_norm(f"{prefix}norm{s}", C)


def fpn_keys(in_channels, out_channels=256, norm=True):
    """FPN lateral/output convs of detectron2's FPN over res/scale/p levels 2..5."""
    for level, c in zip(range(2, 6), in_channels):
        for kind, n_in, k in (("lateral", c, 1), ("output", out_channels, 3)):
            yield f"fpn_{kind}{level}.weight", (out_channels, n_in, k, k)
            if norm:
                yield from layer_norm(f"fpn_{kind}{level}.norm", out_channels)
            else:
                yield f"fpn_{kind}{level}.bias", (out_channels,)


def random_state(keys) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in keys:
        assert name not in state, f"the test's key list repeats {name}"
        if name.endswith("relative_position_index"):
            w = int(shape[0] ** 0.5)
            coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
            d = coords[:, :, None] - coords[:, None, :]
            state[name] = (d[0] + w - 1) * (2 * w - 1) + d[1] + w - 1
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.02
    return state


def assert_loads_strictly(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    assert sorted(set(ours) - set(theirs)) == [], "keys det has and detectron2 does not"
    assert sorted(set(theirs) - set(ours)) == [], "keys detectron2 has and det does not"
    assert {k: s for k, s in ours.items() if theirs[k] != s} == {}, "shape mismatches"
    result = module.load_state_dict(state, strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


def vitdet(embed_dim, depth, num_heads, window_blocks, **kwargs):
    net = ViT(embed_dim=embed_dim, depth=depth, num_heads=num_heads, drop_path_rate=0.1, window_size=14,
              mlp_ratio=4, qkv_bias=True, norm_layer=LN, window_block_indexes=window_blocks,
              residual_block_indexes=[], use_rel_pos=True, out_feature="last_feat", **kwargs)
    return SimpleFeaturePyramid(net, "last_feat", 256, (4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool(),
                                norm="LN", square_pad=1024)


# ViTDet's B, L, H: (embed_dim, depth, heads, global blocks) as in its configs
VITDET = {
    "B": (768, 12, 12, [2, 5, 8, 11]),
    "L": (1024, 24, 16, [5, 11, 17, 23]),
    "H": (1280, 32, 16, [7, 15, 23, 31]),
}


@pytest.mark.parametrize("size", ["B", "L", "H"])
def test_vitdet_checkpoints_load_strictly(size):
    embed_dim, depth, heads, global_blocks = VITDET[size]
    window_blocks = [i for i in range(depth) if i not in global_blocks]
    with torch.device("meta"):
        model = vitdet(embed_dim, depth, heads, window_blocks)
    keys = list(vitdet_keys(embed_dim=embed_dim, depth=depth, num_heads=heads, window_size=14,
                            window_blocks=window_blocks))
    if size == "B":
        # 14 per block, pos_embed + patch_embed.proj, 12 + 8 + 6 + 6 in the four pyramid stages
        assert len(keys) == 12 * 14 + 3 + 32
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in keys}
    assert_loads_strictly(model, state)


@pytest.mark.parametrize(
    ("name", "embed_dim", "depth", "heads", "last_blocks"),
    [("T", 96, 10, 1, (0, 2, 7, 9)), ("S", 96, 16, 1, (0, 2, 13, 15)), ("B", 96, 24, 1, (1, 4, 20, 23)),
     ("L", 144, 48, 2, (1, 7, 43, 47)), ("H", 192, 80, 3, (3, 11, 71, 79))],
)
def test_mvitv2_checkpoints_load_strictly(name, embed_dim, depth, heads, last_blocks):
    with torch.device("meta"):
        model = FPN(MViT(embed_dim=embed_dim, depth=depth, num_heads=heads, last_block_indexes=last_blocks,
                         residual_pooling=True, drop_path_rate=0.2, norm_layer=LN),
                    ["scale2", "scale3", "scale4", "scale5"], 256, norm="LN", top_block=LastLevelMaxPool())
        state = {k: torch.empty(s) for k, s in [
            *mvit_keys(embed_dim=embed_dim, depth=depth, num_heads=heads, last_block_indexes=last_blocks,
                       prefix="bottom_up."),
            *fpn_keys([embed_dim * 2**s for s in range(4)])]}
    assert_loads_strictly(model, state)


@pytest.mark.parametrize(("embed_dim", "depths", "heads"), [(128, (2, 2, 18, 2), (4, 8, 16, 32)),
                                                             (192, (2, 2, 18, 2), (6, 12, 24, 48))])
def test_swin_checkpoints_load_strictly(embed_dim, depths, heads):
    with torch.device("meta"):
        model = FPN(SwinTransformer(depths=depths, drop_path_rate=0.4, embed_dim=embed_dim, num_heads=heads),
                    ["p0", "p1", "p2", "p3"], 256, norm="LN", top_block=LastLevelMaxPool(), square_pad=1024)
        keys = [*swin_keys(embed_dim=embed_dim, depths=depths, num_heads=heads, prefix="bottom_up."),
                *fpn_keys([embed_dim * 2**s for s in range(4)])]
        state = {k: torch.empty(s, dtype=torch.int64 if k.endswith("index") else torch.float32) for k, s in keys}
    assert_loads_strictly(model, state)


def test_small_checkpoints_load_through_detection_checkpointer_and_run(tmp_path):
    """Real tensors this time: files saved with detectron2's names load strictly through
    DetectionCheckpointer and the models run with them."""
    torch.manual_seed(0)
    cases = [
        (vitdet(64, 3, 2, [0, 2], img_size=128, pretrain_img_size=64),
         vitdet_keys(embed_dim=64, depth=3, num_heads=2, window_size=14, window_blocks=[0, 2], img_size=128,
                     pretrain=64)),
        (MViT(img_size=64, embed_dim=16, depth=4, num_heads=1, last_block_indexes=(0, 1, 2, 3), norm_layer=LN,
              adaptive_window_size=8),
         mvit_keys(embed_dim=16, depth=4, num_heads=1, last_block_indexes=(0, 1, 2, 3), img_size=64)),
        (SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)),
         swin_keys(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))),
    ]
    for i, (model, keys) in enumerate(cases):
        state = random_state(keys)
        path = tmp_path / f"model{i}.pth"
        torch.save({"model": state}, path)
        DetectionCheckpointer(model, strict=True).load(str(path))
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, state[name]), name
        with torch.no_grad():
            out = model.eval()(torch.rand(1, 3, 64, 64))
        assert all(torch.isfinite(v).all() for v in out.values())
