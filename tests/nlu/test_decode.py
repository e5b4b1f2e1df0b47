"""Word-level decoding: later pieces of a word follow the word's first piece (exact)."""

from nlu.bio import TAG_TO_ID
from nlu.decode import word_level_tags


def test_word_level_tags():
    text = "coming in size four"
    # pieces: <s> ▁com ing ▁in ▁size ▁fo ur </s>
    offsets = [(0, 0), (0, 3), (3, 6), (6, 9), (9, 14), (14, 17), (17, 19), (0, 0)]
    o, b_size, i_size, b_dep = (
        0,
        TAG_TO_ID["B-SIZE"],
        TAG_TO_ID["I-SIZE"],
        TAG_TO_ID["B-DEPARTMENT"],
    )
    tags = [o, o, b_dep, o, b_size, i_size, b_dep, o]
    assert word_level_tags(text, offsets, tags) == [o, o, o, o, b_size, i_size, i_size, o]


def test_word_level_tags_leading_punctuation_and_clitic():
    text = "¿Tienda 9 ethan's"
    # pieces: <s> ▁¿ Tienda ▁9 ▁ethan 's </s>
    offsets = [(0, 0), (0, 1), (1, 7), (7, 9), (9, 15), (15, 17), (0, 0)]
    b_store, b_person = TAG_TO_ID["B-STORE"], TAG_TO_ID["B-PERSON"]
    i_store = TAG_TO_ID["I-STORE"]
    tags = [0, 0, b_store, i_store, b_person, b_person, 0]
    # "¿" has no letter: "Tienda" decides its word; "'s" starts afresh and keeps its own tag
    assert word_level_tags(text, offsets, tags) == [0, 0, b_store, i_store, b_person, b_person, 0]
    tags = [0, 0, b_store, i_store, b_person, 0, 0]
    assert word_level_tags(text, offsets, tags) == tags
