"""PaletteNet architecture (§2, §4.2): shapes, bias and norm placement, sizes, phase-1/phase-2 gradients."""
import pytest
import torch
from torch import nn

from pnlib.losses import adversarial_loss, e_loss, generator_loss
from pnlib.model import (
    HEADS,
    Discriminator,
    PaletteNet,
    apply_affine,
    count_parameters,
    crop_to,
    pad_to_multiple,
    summary,
    tile_palette,
)

torch.manual_seed(0)


def inputs(n, h, w):
    """A random normalised-LAB image I_s and palette P_t."""
    return torch.rand(n, 3, h, w) * 2 - 1, torch.rand(n, 6, 3) * 2 - 1


def source_palette(G, P_t):
    """P_s for a model that reads one (the palette head): another random palette; else None."""
    return torch.rand_like(P_t) * 2 - 1 if G.uses_source_palette else None


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("n,h,w,width", [(2, 32, 48, 16), (1, 288, 432, 8), (1, 432, 288, 8)])
def test_shapes(n, h, w, width, head):
    G, D = PaletteNet(width, head), Discriminator(width)
    I_s, P_t = inputs(n, h, w)
    P_s = P_t.flip(1) if G.uses_source_palette else None  # the palette head also reads P_s
    with torch.no_grad():
        c = G.encoder(I_s)
        ab = G(I_s, P_t, P_s)
        logits = D(G.recolor_lab(I_s, P_t, P_s), P_t)
    # eq. (1): c1 is the deepest (8w at H/16), c4 the shallowest (w at H/2)
    for ci, ch, k in zip(c, (8, 4, 2, 1), (16, 8, 4, 2), strict=True):
        assert ci.shape == (n, ch * width, h // k, w // k)
    assert ab.shape == (n, 2, h, w)
    if head == "direct":
        assert ab.abs().max() < 1  # tanh
    assert logits.shape == (n, 1, h // 16, w // 16)  # §4.2: H/16 × W/16 heat map


def test_tile_palette_repeats_P_on_every_pixel():
    P = torch.arange(36.0).reshape(2, 6, 3)
    t = tile_palette(P, torch.zeros(2, 5, 3, 4))
    assert t.shape == (2, 18, 3, 4)
    assert torch.equal(t[:, :, 2, 1], P.reshape(2, 18))


def test_bias_fe_none_rd_final_only():
    G = PaletteNet(8)
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    assert all(m.bias is None for m in G.encoder.modules() if isinstance(m, convs))  # §4.2
    assert G.decoder.to_ab.bias is not None  # RD "with bias" (§4.2), where a bias can act


def leaves(module):
    return [(name, m) for name, m in module.named_modules() if not list(m.children())]


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_every_conv_followed_by_instancenorm_then_leakyrelu(part):
    mods = leaves(getattr(PaletteNet(8), part))
    convs = [i for i, (_, m) in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == (1 + 4 * 3 if part == "encoder" else 4 + 1)
    for i in convs:
        name, _ = mods[i]
        if name == "to_ab":  # RD's final conv feeds tanh, with no norm (§2, §4.2)
            assert i == len(mods) - 1
            continue
        assert isinstance(mods[i + 1][1], nn.InstanceNorm2d), name
        assert isinstance(mods[i + 2][1], nn.LeakyReLU), name


@pytest.mark.parametrize("h,w", [(37, 48), (32, 53), (300, 432), (16, 16)])
def test_size_not_multiple_of_16_raises(h, w):
    I_s, P_t = inputs(1, h, w)
    with pytest.raises(ValueError, match=f"{h}x{w}"):
        PaletteNet(4)(I_s, P_t)
    with pytest.raises(ValueError, match=f"{h}x{w}"):
        Discriminator(4)(I_s, P_t)


@pytest.mark.parametrize("head", HEADS)
def test_recolor_any_size_keeps_size_and_L(head):
    G = PaletteNet(8, head).eval()
    I_s, P_t = inputs(1, 37, 53)
    with torch.no_grad():
        out = G.recolor_any_size(I_s, P_t, source_palette(G, P_t))
    assert out.shape == (1, 3, 37, 53)
    assert torch.equal(out[:, :1], I_s[:, :1])


def test_pad_to_multiple_and_crop_to():
    x = torch.rand(1, 3, 37, 53)
    padded, size = pad_to_multiple(x)
    assert padded.shape[-2:] == (48, 64) and size == (37, 53)
    assert torch.equal(crop_to(padded, size), x)
    tiny, _ = pad_to_multiple(torch.rand(1, 3, 5, 7))  # too small for reflect: replicate
    assert tiny.shape[-2:] == (16, 32)  # 16×16 would leave one pixel at H/16 for InstanceNorm


@pytest.mark.parametrize("head", HEADS)
def test_recolor_any_size_tiny_image(head):
    G = PaletteNet(4, head)
    I_s, P_t = inputs(1, 5, 7)
    assert G.recolor_any_size(I_s, P_t, source_palette(G, P_t)).shape == (1, 3, 5, 7)


def test_phase1_e_loss_reaches_every_parameter():
    # §3.1: E-loss trains FE and RD jointly, so every parameter must receive a gradient
    G = PaletteNet(8)
    I_s, P_t = inputs(2, 32, 48)
    e_loss(G(I_s, P_t), torch.rand(2, 2, 32, 48) * 2 - 1).backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_affine_head_starts_as_the_identity():
    """A = 1, β = 0 at initialisation: before training, G returns the source's own chroma, exactly."""
    G = PaletteNet(8, "affine")
    I_s, P_t = inputs(2, 32, 48)
    with torch.no_grad():
        assert torch.equal(G(I_s, P_t), I_s[:, 1:])


def test_apply_affine_is_a_matrix_per_pixel():
    t, ab = torch.randn(2, 6, 5, 7), torch.randn(2, 2, 5, 7)
    A = t[:, :4].permute(0, 2, 3, 1).reshape(2, 5, 7, 2, 2)
    want = torch.einsum("nhwij,njhw->nihw", A, ab) + t[:, 4:]
    torch.testing.assert_close(apply_affine(t, ab), want)


@pytest.mark.parametrize("head", ["affine", "palette"])
def test_e_loss_reaches_every_parameter_after_one_step(head):
    # ours: the zero-initialised last conv passes no gradient back at step 0; after one step all of G learns
    G = PaletteNet(8, head)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    I_s, P_t = inputs(2, 32, 48)
    P_s = source_palette(G, P_t)
    target = torch.rand(2, 2, 32, 48) * 2 - 1
    for _ in range(2):
        opt.zero_grad()
        e_loss(G(I_s, P_t, P_s), target).backward()
        opt.step()
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="unknown head 'tanh'"):
        PaletteNet(8, "tanh")


@pytest.mark.parametrize("head", HEADS)
def test_phase2_frozen_fe_unchanged_rd_trained(head):
    # §3.2 / Fig. 4: phase 2 freezes FE and trains RD with λ L_E + L_Adv
    G, D = PaletteNet(8, head), Discriminator(8)
    G.encoder.requires_grad_(False).eval()
    fe_before = {k: v.clone() for k, v in G.encoder.state_dict().items()}
    rd_before = {k: v.clone() for k, v in G.decoder.state_dict().items()}
    opt = torch.optim.Adam(G.decoder.parameters(), lr=2e-4, betas=(0.5, 0.999))
    I_s, P_t = inputs(2, 32, 48)
    I_hat = G.recolor_lab(I_s, P_t, source_palette(G, P_t))
    loss = generator_loss(e_loss(I_hat[:, 1:], torch.zeros(2, 2, 32, 48)), adversarial_loss(D, I_hat, P_t))
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in G.encoder.parameters())
    assert all(torch.equal(v, fe_before[k]) for k, v in G.encoder.state_dict().items())
    assert any(not torch.equal(v, rd_before[k]) for k, v in G.decoder.state_dict().items())


def test_summary_and_count():
    G, D = PaletteNet(4), Discriminator(4)
    assert count_parameters(G) == count_parameters(G.encoder) + count_parameters(G.decoder)
    text = summary(G, D, size=(32, 48))
    assert "GFLOPs" in text and f"{count_parameters(D):,}" in text
