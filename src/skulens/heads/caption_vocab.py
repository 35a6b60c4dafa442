"""A word-level title vocabulary trained on a catalog: lower-cased words in, each word's most frequent
catalog spelling out ("adidas" -> "ADIDAS"), so generated titles read like the catalog's own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from skulens.errors import SkulensError

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


class CaptionVocabError(SkulensError, ValueError):
    """A vocabulary that cannot be built or restored."""

    code = "caption_vocab"


def words(title: str) -> list[str]:
    return str(title).split()


class WordVocab:
    """Words seen at least ``min_count`` times in the training titles; the rest map to ``<unk>``."""

    def __init__(self, tokens: Sequence[str], display: Sequence[str]) -> None:
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS) or len(tokens) != len(display):
            raise CaptionVocabError("a caption vocabulary starts with the special tokens and has one display form per token")
        self.tokens = list(tokens)
        self.display = list(display)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, titles: Iterable[str], min_count: int = 2) -> WordVocab:
        spellings: dict[str, Counter] = {}
        for title in titles:
            for word in words(title):
                spellings.setdefault(word.lower(), Counter())[word] += 1
        kept = sorted(
            (w for w, c in spellings.items() if sum(c.values()) >= min_count), key=lambda w: (-sum(spellings[w].values()), w)
        )
        if not kept:
            raise CaptionVocabError(
                f"no word occurs {min_count} or more times in the training titles; lower min_count or add rows"
            )
        return cls([*SPECIALS, *kept], [*SPECIALS, *(spellings[w].most_common(1)[0][0] for w in kept)])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, title: str, max_len: int) -> list[int]:
        """``<bos> w1 .. wn <eos>`` ids, the words cut to ``max_len``."""
        ids = [self.index.get(word.lower(), UNK) for word in words(title)][:max_len]
        return [BOS, *ids, EOS]

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.display[i])
        return " ".join(out)

    def unknown_share(self, titles: Sequence[str]) -> float:
        """The share of words in ``titles`` outside the vocabulary (generation can never produce them)."""
        all_words = [w.lower() for t in titles for w in words(t)]
        return sum(w not in self.index for w in all_words) / max(len(all_words), 1)

    def to_config(self) -> dict:
        return {"tokens": self.tokens, "display": self.display}

    @classmethod
    def from_config(cls, config: dict) -> WordVocab:
        tokens, display = config.get("tokens"), config.get("display")
        if not isinstance(tokens, list) or not isinstance(display, list) or not all(isinstance(t, str) for t in tokens + display):
            raise CaptionVocabError("the saved caption vocabulary is damaged: 'tokens' and 'display' must be lists of strings")
        return cls(tokens, display)
