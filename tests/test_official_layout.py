"""Writing the official key layout (ulib/official_layout.py): `to_official_state_dict` gives the released files'
keys, order and shapes, and refuses a model of the wrong kind. Reading the files back: tests/test_official.py."""
import pytest
import torch

from ulib.official import build_sampler, build_vqgan
from ulib.official_layout import to_official_state_dict

from helpers import OFFICIAL_KEYS_OF


@pytest.mark.parametrize("kind", ["vqgan", "absorbing", "autoregressive"])
def test_to_official_state_dict_writes_the_reference_layout(official_keys, kind):
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = build_vqgan() if kind == "vqgan" else build_sampler(kind)
        sd = to_official_state_dict(model, kind)
    expected = official_keys[OFFICIAL_KEYS_OF[kind]]
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == [(k, tuple(v)) for k, v in expected.items()]


def test_a_model_of_another_kind_is_refused():
    net = build_sampler("autoregressive", bert_n_emb=32, bert_n_head=4, bert_n_layers=2, codebook_size=24,
                        latent_shape=(1, 4, 4))
    with pytest.raises(ValueError, match=r"kind='absorbing'.*Transformer\(causal=False\)"):
        to_official_state_dict(net, "absorbing")
    with pytest.raises(ValueError, match=r"kind='ae'.*'vqgan'"):
        to_official_state_dict(net, "ae")
