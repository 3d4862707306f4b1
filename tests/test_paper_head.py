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
