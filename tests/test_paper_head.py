"""The paper's model (direct head) in recolor: a user's palette reaches it in the photo's palette order."""
import torch

from pnlib.inference import palette_of, recolor
from pnlib.model import PaletteNet
from pnlib.palette import match_palette
from pnlib.photos import bundled_photos


def test_direct_head_gets_the_target_paired_with_the_photos_palette():
    photo = dict(bundled_photos())["chelsea"][::4, ::4]
    torch.manual_seed(0)
    G = PaletteNet(8, head="direct").eval()
    target = torch.rand(6, 3, generator=torch.Generator().manual_seed(1))
    paired = match_palette(palette_of(photo), target)
    assert not torch.equal(paired, target)                     # the pairing reorders this target
    a = recolor(photo, target, model=G)                        # default: paired with the photo's palette
    b = recolor(photo, paired, model=G, match=False)           # the paired order, kept
    c = recolor(photo, target, model=G, match=False)           # the order as given
    assert (a == b).all()
    assert not (a == c).all()
    shuffled = target[torch.tensor([3, 0, 5, 1, 4, 2])]        # any order of the same colours: one result
    assert (recolor(photo, shuffled, model=G) == a).all()


def test_paper_model_is_the_shipped_paper_checkpoint_at_small_presets():
    from pnlib.config import SHIPPED_MODELS
    from pnlib.experiments import paper_model

    G, note = paper_model("ci", device="cpu")
    assert G.head == "direct" and not G.uses_source_palette
    assert SHIPPED_MODELS["paper"].name in note and note.startswith("PaletteNet (the paper's)")


def test_our_model_is_the_shipped_palette_head_and_says_it_is_ours():
    from pnlib.config import SHIPPED_MODELS
    from pnlib.experiments import our_model

    G, note = our_model("quick", device="cpu")
    assert G.head == "palette" and G.uses_source_palette
    assert SHIPPED_MODELS["ours"].name in note and note.startswith("ours: palette head (not in the paper)")
    assert "PaletteNet" not in note


def test_protocol_b_gives_the_paper_head_the_target_paired_with_the_photos_palette():
    """Fair comparisons: in protocol B the paper's head gets each target in the order of the photo's own
    palette (as Chang et al. and ours do), the order it was trained on; the row is keyed "paper"."""
    from pnlib.color import lab_to_rgb, normalize_lab, rgb_to_lab, to_uint8
    from pnlib.data import load_pairs, split_pairs, validation_set
    from pnlib.palette import palette_lab_norm
    from pnlib.protocols import _palettenet, protocol_b

    torch.manual_seed(0)
    G = PaletteNet(8, head="direct").eval()
    train, val = split_pairs(load_pairs("bundled"))
    res = protocol_b(G, val, train, (32, 48), n_photo=1, n_random=2, keep_outputs=True)
    assert set(res["methods"]) == {"identity", "chang", "tan", "paper"}
    o, i = res["outputs"], len(res["tuples"]) - 1                 # a random palette: far from any order
    v = int(o["image_index"][i])
    P_s, P_t = val[v].palette, o["target_palette"][i]
    I_s = normalize_lab(rgb_to_lab(validation_set(val, size=(32, 48))["rgb"][v:v + 1])).clamp(-1, 1)

    def run(P):
        return to_uint8(lab_to_rgb(_palettenet(G, I_s, palette_lab_norm(P[None])), clip=True))[0]
    assert not torch.equal(match_palette(P_s, P_t), P_t)         # the pairing reorders this target
    assert torch.equal(o["paper"][i], run(match_palette(P_s, P_t)))
    assert not torch.equal(o["paper"][i], run(P_t))
