"""Character sets and the character tokenizer of the recognizer's decoders (PARSeq convention).

Token ids: 0 = [EOS], 1..N = characters, N+1 = [BOS], N+2 = [PAD]. The decoders predict EOS + characters.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass

import torch

ASCII_PRINTABLE = string.digits + string.ascii_letters + string.punctuation  # 94, as PARSeq/CLIP4STR
LATIN1_LETTERS = "".join(chr(c) for c in range(0xC0, 0x100) if chr(c) not in "×÷")
DOCUMENT_SYMBOLS = "€£¥°§±×«»–—‘’“”…"
# The embedded default: printable ASCII with space, Latin-1 letters, common document symbols.
DOCUMENT_CHARSET = " " + ASCII_PRINTABLE + LATIN1_LETTERS + DOCUMENT_SYMBOLS

# Typographic look-alikes mapped onto the charset rather than dropped.
_FOLD = str.maketrans({"ﬁ": "fi", "ﬂ": "fl", "ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl", "\u00a0": " ", "−": "-",
                       "‐": "-", "‑": "-", "‒": "–", "′": "'", "″": '"', "•": "·" if "·" in DOCUMENT_CHARSET else "-"})


def normalize_label(text: str) -> str:
    """NFC + folding of ligatures and dash/space variants that fonts and text layers produce."""
    return unicodedata.normalize("NFC", text).translate(_FOLD)


@dataclass(frozen=True)
class CharTokenizer:
    charset: str

    def __post_init__(self) -> None:
        if len(set(self.charset)) != len(self.charset):
            raise ValueError("charset has duplicate characters")

    @property
    def eos_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return len(self.charset) + 1

    @property
    def pad_id(self) -> int:
        return len(self.charset) + 2

    @property
    def num_classes(self) -> int:
        """Output classes of a decoder head: EOS + characters."""
        return len(self.charset) + 1

    @property
    def vocab_size(self) -> int:
        """Input embedding size of a decoder: EOS, characters, BOS, PAD."""
        return len(self.charset) + 3

    def supports(self, text: str) -> bool:
        return all(ch in self._index for ch in text)

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {ch: i + 1 for i, ch in enumerate(self.charset)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def encode(self, labels: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """[BOS] chars [EOS] [PAD]..., as a (B, L+2) long tensor; unknown characters are dropped."""
        index = self._index
        seqs = [[self.bos_id] + [index[c] for c in label if c in index] + [self.eos_id] for label in labels]
        width = max(len(s) for s in seqs)
        out = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        for row, seq in enumerate(seqs):
            out[row, : len(seq)] = torch.tensor(seq)
        return out.to(device)

    def decode(self, probs: torch.Tensor) -> tuple[list[str], list[torch.Tensor]]:
        """Greedy decode of (B, T, C) probabilities: strings up to the first EOS and per-char probabilities
        (EOS included, as PARSeq does for the confidence)."""
        max_p, ids = probs.max(-1)
        texts, char_probs = [], []
        for row_ids, row_p in zip(ids.tolist(), max_p):
            end = row_ids.index(self.eos_id) if self.eos_id in row_ids else len(row_ids)
            texts.append("".join(self.charset[i - 1] for i in row_ids[:end] if 0 < i <= len(self.charset)))
            char_probs.append(row_p[: end + 1])
        return texts, char_probs
