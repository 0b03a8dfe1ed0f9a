"""Text sampler for synthetic words: word-frequency lists of six languages plus document tokens
(numbers, dates, prices, codes, e-mail addresses, URLs, punctuation, casing variants, short phrases)."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from functools import lru_cache

from wordfreq import top_n_list

LANGUAGES = {"en": 0.45, "fr": 0.12, "de": 0.12, "es": 0.11, "it": 0.1, "pt": 0.1}
CURRENCIES = ("$", "€", "£", "¥", "USD ", "EUR ", "CHF ")
TLDS = ("com", "org", "net", "de", "fr", "io", "co.uk", "edu", "gov", "it", "es")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=None)
def word_list(lang: str, size: int) -> tuple[str, ...]:
    return tuple(w for w in top_n_list(lang, size) if w.isprintable() and " " not in w)


@dataclass
class TextSampler:
    """Draws label strings. ``vocab_size`` bounds each language's list (the test uses rarer words)."""

    rng: random.Random
    vocab_size: int = 40000
    max_length: int = 25
    charset: str | None = None
    upper_share: float = 0.0  # extra share of texts upper-cased whole (receipts, form labels, headings)
    field_share: float = 0.0  # share of "LABEL: value" texts (forms, receipts)
    _langs: list[str] = field(init=False)
    _weights: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self._langs = list(LANGUAGES)
        self._weights = list(LANGUAGES.values())

    def word(self) -> str:
        lang = self.rng.choices(self._langs, self._weights)[0]
        words = word_list(lang, self.vocab_size)
        # Favour frequent words without starving the tail: sample a rank from a skewed distribution.
        rank = int(len(words) * self.rng.random() ** 1.6)
        return words[min(rank, len(words) - 1)]

    def _cased(self, text: str) -> str:
        r = self.rng.random()
        if r < 0.5:
            return text
        if r < 0.78:
            return text[:1].upper() + text[1:]
        if r < 0.93:
            return text.upper()
        return "".join(c.upper() if self.rng.random() < 0.5 else c for c in text)

    def _punctuated(self, text: str) -> str:
        r = self.rng.random()
        if r < 0.55:
            return text
        if r < 0.8:
            return text + self.rng.choice([",", ".", ";", ":", "!", "?", ")", "”", "’s", "'s", "…"])
        if r < 0.9:
            left, right = self.rng.choice([("(", ")"), ("\"", "\""), ("“", "”"), ("«", "»"), ("[", "]"), ("'", "'")])
            return left + text + right
        return self.rng.choice(["(", "“", "-", "—", "¿", "¡"]) + text

    def number(self) -> str:
        kind = self.rng.randrange(7)
        if kind == 0:
            return str(self.rng.randint(0, 10 ** self.rng.randint(1, 7)))
        if kind == 1:
            value = self.rng.uniform(0, 10 ** self.rng.randint(1, 6))
            text = f"{value:,.2f}"
            return text.replace(",", " ").replace(".", ",") if self.rng.random() < 0.3 else text
        if kind == 2:
            return f"{self.rng.randint(0, 100)}%" if self.rng.random() < 0.5 else f"{self.rng.uniform(0, 100):.1f}%"
        if kind == 3:
            return f"{self.rng.randint(1, 999)}{self.rng.choice(['kg', 'mm', 'cm', 'm', 'km', 'g', 'ml', '°C', '°', 'h'])}"
        if kind == 4:
            return f"{self.rng.choice(['+', '-', '±', '×', '#', 'No.', '§'])}{self.rng.randint(1, 999)}"
        if kind == 5:
            return f"{self.rng.randint(1, 12)}.{self.rng.randint(1, 30)}"
        return str(self.rng.randint(1900, 2035))

    def date(self) -> str:
        d, m, y = self.rng.randint(1, 31), self.rng.randint(1, 12), self.rng.randint(1950, 2035)
        return self.rng.choice([f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d}.{m}.{y}", f"{m}/{d}/{y % 100:02d}",
                                f"{d}-{MONTHS[m - 1]}-{y}", f"{MONTHS[m - 1]}.", f"{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}"])

    def price(self) -> str:
        amount = f"{self.rng.uniform(0, 10 ** self.rng.randint(1, 5)):,.2f}"
        cur = self.rng.choice(CURRENCIES)
        if self.rng.random() < 0.6:
            return cur.strip() + amount if len(cur.strip()) == 1 else cur + amount
        return amount + (" " if self.rng.random() < 0.5 else "") + cur.strip()

    def code(self) -> str:
        alphabet = string.ascii_uppercase + string.digits
        parts = ["".join(self.rng.choices(alphabet, k=self.rng.randint(2, 6))) for _ in range(self.rng.randint(1, 3))]
        return self.rng.choice(["-", "/", ".", "_", ""]).join(parts)

    def email(self) -> str:
        user = self.word().lower() + self.rng.choice(["", ".", "_"]) + self.rng.choice([self.word().lower(), str(self.rng.randint(1, 99))])
        return f"{user}@{self.word().lower()}.{self.rng.choice(TLDS)}"

    def url(self) -> str:
        host = f"{self.rng.choice(['www.', '', 'docs.'])}{self.word().lower()}.{self.rng.choice(TLDS)}"
        if self.rng.random() < 0.5:
            host = self.rng.choice(["http://", "https://"]) + host
        return host + (f"/{self.word().lower()}" if self.rng.random() < 0.4 else "")

    def phrase(self) -> str:
        return " ".join(self._cased(self.word()) if i == 0 else self.word() for i in range(self.rng.randint(2, 3)))

    def field(self) -> str:
        label = " ".join(self.word() for _ in range(self.rng.choice([1, 1, 2])))
        value = self.rng.choice([self.number, self.date, self.price, self.code])()
        return self._cased(label) + self.rng.choice([":", " :", ".:", ""]) + self.rng.choice([" ", " ", ""]) + value

    def sample(self) -> str:
        for _ in range(20):
            text = self._draw()
            if self.upper_share and self.rng.random() < self.upper_share:  # no draw at 0: streams stay as they were
                text = text.upper()
            if 0 < len(text) <= self.max_length and (self.charset is None or all(c in self.charset for c in text)):
                return text
        return self.word()[: self.max_length]

    def _draw(self) -> str:
        if self.field_share and self.rng.random() < self.field_share:
            return self.field()
        r = self.rng.random()
        if r < 0.62:
            return self._punctuated(self._cased(self.word()))
        if r < 0.72:
            return self.number()
        if r < 0.77:
            return self.date()
        if r < 0.82:
            return self.price()
        if r < 0.87:
            return self.code()
        if r < 0.89:
            return self.email()
        if r < 0.91:
            return self.url()
        if r < 0.93:
            return self.rng.choice(string.punctuation.replace("_", "") + "€£¥°§±×«»–—‘’“”…") * self.rng.choice([1, 1, 1, 2, 3])
        return self.phrase()
