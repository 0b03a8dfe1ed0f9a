"""Batched word recognition: crops from many pages in, (text, confidence) out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ocrapp import accel
from ocrapp.models_registry import default_lexicon_path, default_recognizer_path
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.form_rules import FormRuleConfig, erase_form_rules
from ocrapp.recognition.lexicon import Lexicon, LexiconConfig, apply_corrections, in_listed_language, propose
from ocrapp.recognition.long_crops import (JOIN_NONE, SplitConfig, glues_spaced_reads, has_space_gap, join_reads,
                                           split_long_crop)
from ocrapp.recognition.preprocess import images_to_tensor, resize_crop, widen_margin
from ocrapp.recognition.weights import load_recognizer


def unsure_indices(readings: Sequence[tuple[str, float]], below: float) -> list[int]:
    """The crops whose reading is less confident than ``below``: those the predictor reads again."""
    return [i for i, (_, conf) in enumerate(readings) if conf < below]


def keep_more_confident(readings: list[tuple[str, float]], indices: Sequence[int],
                        again: Sequence[tuple[str, float]]) -> None:
    """Where the second reading of ``readings[i]`` is more confident, it replaces the first (in place)."""
    for i, reading in zip(indices, again):
        if reading[1] > readings[i][1]:
            readings[i] = reading


@dataclass(frozen=True)
class RecognizerConfig:
    batch_size: int = 128
    # On a GPU the batch grows (powers of two) up to this while the measured memory per crop fits the free memory
    # (torch.cuda.mem_get_info); on a CPU it stays at batch_size. An out-of-memory error halves it and retries.
    max_batch_size: int = 1024
    refine_iters: int = 1
    # Which decoder's reading is returned: "cross" (CLIP4STR's final output), "visual", or "confident" (per crop
    # the more confident of the two); None = the weights' own choice (Clip4StrConfig.output_branch).
    branch: str | None = None
    # "ar": the cross-modal decoder decodes autoregressively; "fast": one pass on the visual reading (see Clip4Str).
    cross_decoding: str = "ar"
    # Branch "confident": a crop whose visual reading is at least this confident keeps it and skips the
    # cross-modal decoder (Clip4Str.forward); None runs both branches on every crop.
    cross_skip_confidence: float | None = 0.98
    # A crop narrower than this many heights is also read turned +-90 degrees (vertical text; single characters
    # are rarely this narrow with the crop's margin).
    vertical_aspect: float = 0.4
    # The image tower (~40% of a CPU read) in bf16 where the hardware has native bf16 (accel.low_precision_dtype):
    # half its time on such CPUs; readings measured against fp32 in the model card. False: fp32 everywhere.
    low_precision_image_tower: bool = True
    # How crops too wide for one read (lines, long words) are cut into pieces (see long_crops).
    split: SplitConfig = SplitConfig()
    # A piece read with spaces keeps them only if its ink has a blank gap at least this many text heights wide
    # somewhere; otherwise they are dropped ("f rom" -> "from", "of f" -> "off": the text layer of some training
    # PDFs splits printed words). None keeps every space as read.
    min_space_gap: float | None = 0.2
    # A crop wider than ``split.max_aspect`` heights that was cut at word spaces is also read cut only at sure
    # spaces, and the more confident reading is kept (see ``Recognizer._alternatives``).
    sure_space_alternative: bool = True
    # A crop read with a confidence below ``reread_below`` is read again with a wider margin (``reread_margin`` of
    # its height on every side, border repeated) and the more confident reading is kept: crops cut tight (a
    # detector's, an annotator's) read better loosened. None reads every crop once. Chosen on the held-out folders
    # (benchmarks/reread.py, session 13, mean exact of 5): once 0.8196; margin 0.1 below 0.5 / 0.7 / 0.8 / 0.9:
    # 0.8216 / 0.8246 / 0.8254 / 0.8242; below 0.8 reads 6 % (real PDF words) to 38 % (bilevel scans) of them twice.
    reread_below: float | None = 0.8
    reread_margin: float = 0.1
    # Unsure readings of words missing from the word list are checked against listed words near them (see
    # recognition.lexicon); None keeps every reading as the model gives it.
    lexicon: LexiconConfig | None = LexiconConfig()
    # Form rules (a line a word is typed on, a box edge) cut in by a word's box are painted over before reading
    # (see form_rules); None reads crops as they are.
    form_rules: FormRuleConfig | None = FormRuleConfig()


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available")
    return torch.device(name)


def drop_gapless_spaces(piece: np.ndarray, read: tuple[str, float], min_gap: float | None) -> tuple[str, float]:
    """``read`` without its spaces when ``piece`` has no blank gap of ``min_gap`` text heights to hold one."""
    text, conf = read
    if min_gap is None or " " not in text.strip() or has_space_gap(piece, min_gap):
        return read
    return "".join(text.split()), conf


class Recognizer:
    def __init__(self, model: Clip4Str, device: torch.device, cfg: RecognizerConfig = RecognizerConfig(),
                 lexicon: Lexicon | None = None) -> None:
        """Takes ``model`` over for inference: eval mode, BatchNorms folded (it cannot be trained afterwards).
        ``lexicon``: the word list for ``cfg.lexicon`` (without one, readings are not corrected)."""
        self.model = model.to(device).eval().fold_batchnorm()
        # The crops arrive channels-last (images_to_tensor permutes an NHWC batch); convolution weights in the same
        # layout save the image tower a layout conversion per layer (~10% of its time on a CPU).
        self.model.clip_model.visual.to(memory_format=torch.channels_last)
        self.model.image_autocast = accel.low_precision_dtype(device) if cfg.low_precision_image_tower else None
        self.device = device
        self.cfg = cfg
        self.lexicon = lexicon if cfg.lexicon is not None else None
        self._batch_size = cfg.batch_size

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "auto",
                        cfg: RecognizerConfig = RecognizerConfig(),
                        lexicon_path: str | Path | None = None) -> "Recognizer":
        """The recognizer weights at ``path`` and, when ``cfg.lexicon`` is set, the word list at ``lexicon_path``
        (default: the embedded ``models/lexicon.tsv.gz``)."""
        dev = resolve_device(device)
        model = load_recognizer(Path(path) if path else default_recognizer_path(), dev)
        lexicon = None
        if cfg.lexicon is not None:
            lexicon_file = Path(lexicon_path) if lexicon_path else default_lexicon_path()
            if not lexicon_file.is_file():
                raise FileNotFoundError(f"word list not found: {lexicon_file} (RecognizerConfig(lexicon=None) "
                                        "reads without one)")
            lexicon = Lexicon.load(lexicon_file)
        return cls(model, dev, cfg, lexicon)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.model.cfg.image_size

    def read(self, crops: Sequence[np.ndarray], correct: bool = True) -> list[tuple[str, float]]:
        """Read RGB word crops; returns (text, confidence) per crop, confidence = product of char probs.
        ``correct=False``: the model's readings, without the word list's corrections."""
        if self.cfg.form_rules is not None:
            crops = [erase_form_rules(crop, self.cfg.form_rules) for crop in crops]
        out = self._read_once(crops)
        if self.cfg.reread_below is not None:
            self._reread_unsure(crops, out, self.cfg.reread_below)
        if correct and self.lexicon is not None:
            self._correct(crops, out)
        return out

    def _reread_unsure(self, crops: Sequence[np.ndarray], out: list[tuple[str, float]], below: float) -> None:
        unsure = unsure_indices(out, below)
        if unsure:
            again = self._read_once([widen_margin(crops[i], self.cfg.reread_margin) for i in unsure])
            keep_more_confident(out, unsure, again)

    def _correct(self, crops: Sequence[np.ndarray], out: list[tuple[str, float]]) -> None:
        """Replace unsure readings by listed words the image supports nearly as well (recognition.lexicon); the
        confidence stays the reading's."""
        out[:] = apply_corrections(out, self.score_corrections(crops, out, self.cfg.lexicon), self.cfg.lexicon)

    def score_corrections(self, crops: Sequence[np.ndarray], readings: Sequence[tuple[str, float]],
                          cfg: LexiconConfig) -> list[tuple[int, list[tuple[str, float]], float, list[float]]]:
        """For each reading below ``cfg.below`` with corrections: (its index, the corrections (text, Zipf), the
        reading's log probability on its crop, each correction's); none when the readings are not in the word
        list's languages (``lexicon.in_listed_language``)."""
        if not in_listed_language(readings, self.lexicon, cfg):
            return []
        limit = self.model.cfg.max_label_length
        jobs = []
        for i, (text, conf) in enumerate(readings):
            if conf < cfg.below and len(text) <= limit:
                candidates = [c for c in propose(text, self.lexicon, cfg) if len(c[0]) <= limit]
                if candidates:
                    jobs.append((i, candidates))
        if not jobs:
            return []
        scores = self._text_log_probs([crops[i] for i, _ in jobs],
                                      [[readings[i][0]] + [text for text, _ in candidates] for i, candidates in jobs])
        return [(i, candidates, first, rest) for (i, candidates), (first, *rest) in zip(jobs, scores)]

    def _read_once(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        plans: list[tuple[int, list[np.ndarray], list[str]]] = []  # (crop, pieces, joins); the most confident wins
        per_piece = [False] * len(crops)  # plans of a crop compared by their pieces' geometric mean confidence
        for i, crop in enumerate(crops):
            pieces, joins = split_long_crop(crop, self.cfg.split)
            plans.append((i, pieces, joins))
            alternatives = self._alternatives(crop, len(pieces))
            plans += [(i, alt_pieces, alt_joins) for alt_pieces, alt_joins in alternatives]
            per_piece[i] = bool(alternatives) and len(alternatives[0][0]) > 1
        results = iter(self._read_pieces([piece for _, pieces, _ in plans for piece in pieces]))
        out: list[tuple[str, float] | None] = [None] * len(crops)
        best = [-1.0] * len(crops)
        for i, pieces, joins in plans:
            reads = [drop_gapless_spaces(piece, next(results), self.cfg.min_space_gap) for piece in pieces]
            conf = float(np.prod([c for _, c in reads])) if reads else 0.0
            score = conf ** (1 / len(reads)) if per_piece[i] and reads else conf
            texts = [t for t, _ in reads]
            if out[i] is not None and glues_spaced_reads(texts, joins):
                continue  # an alternative that glued words whose spaces were not sure (the first plan always counts)
            if score > best[i]:
                out[i], best[i] = (join_reads(texts, joins), conf), score
        return out

    def _alternatives(self, crop: np.ndarray, num_pieces: int) -> list[tuple[list[np.ndarray], list[str]]]:
        """Other ways to read a crop, as (pieces, joins). A crop of a few words that was cut is also read whole: a
        wide letter gap (typewriter "l i", a digit "1") can pass for a space, and the model sees the difference;
        a longer one is also read cut only at sure spaces (the line's own split of its gaps takes a monospaced
        face's letter gaps for spaces: "\\usepackage[l i ght]"), the two compared by their pieces' geometric mean
        confidence, since a product favours fewer pieces and glued words read confidently ("resortto"); that plan
        is dropped where a piece it joined to another with nothing reads as several words (``glues_spaced_reads``:
        a line whose spaces are too narrow to be sure is one "word" to it, cut at its widest gaps). A crop
        much taller than wide may hold vertical text: it is also read turned a quarter both ways."""
        h, w = crop.shape[:2]
        if num_pieces > 1 and w <= self.cfg.split.max_aspect * h:
            return [([crop], [JOIN_NONE])]
        if num_pieces > 1 and self.cfg.sure_space_alternative:
            pieces, joins = split_long_crop(crop, self.cfg.split, sure_spaces=True)
            return [(pieces, joins)] if len(pieces) < num_pieces else []
        if w < self.cfg.vertical_aspect * h:
            return [([np.ascontiguousarray(np.rot90(crop, k))], [JOIN_NONE]) for k in (1, -1)]
        return []

    def _read_pieces(self, pieces: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        h, w = self.input_size
        # Similar aspect ratios decode to similar lengths, so a sorted batch stops decoding sooner.
        order = sorted(range(len(pieces)), key=lambda i: pieces[i].shape[1] / max(1, pieces[i].shape[0]))
        out: list[tuple[str, float]] = [("", 0.0)] * len(pieces)
        start = 0
        while start < len(order):
            idx = order[start:start + self._tail_batch_size(len(order) - start)]
            batch = np.stack([resize_crop(pieces[i], h, w) for i in idx])
            baseline = accel.start_peak(self.device)
            try:
                results = self._read_batch(batch)
            except Exception as exc:  # an OOM halves the batch and retries the same crops
                if not accel.is_oom(exc) or self._batch_size == 1:
                    raise
                self._batch_size = max(1, self._batch_size // 2)
                accel.release_cached(self.device)
                continue
            self._grow_batch(len(idx), accel.peak_since(self.device, baseline), len(order) - start - len(idx))
            for i, res in zip(idx, results):
                out[i] = res
            start += len(idx)
        return out

    def _tail_batch_size(self, remaining: int) -> int:
        """The batch size, or all of ``remaining`` when it is at most a quarter more: a batch of a few leftover
        pieces (a crop or two cut in two) costs nearly a full batch's decoding steps."""
        return remaining if remaining <= self._batch_size * 5 // 4 else self._batch_size

    def _grow_batch(self, done: int, peak: int | None, remaining: int) -> None:
        """After a full batch on a GPU, size the next ones from the measured peak memory per crop."""
        if peak is None or done < self._batch_size or remaining <= 0:
            return
        free = accel.free_memory(self.device)
        if free is not None:
            self._batch_size = accel.fit_batch(peak / done, free, self._batch_size, self.cfg.max_batch_size)

    @torch.inference_mode()
    def _text_log_probs(self, crops: Sequence[np.ndarray], texts: Sequence[Sequence[str]],
                        chunk: int = 256) -> list[list[float]]:
        """log p(text | crop) of every text of ``texts[k]`` on ``crops[k]`` (Clip4Str.text_log_prob)."""
        h, w = self.input_size
        pairs = [(k, text) for k, row in enumerate(texts) for text in row]
        scores: list[float] = []
        for start in range(0, len(crops), self._batch_size):
            batch = np.stack([resize_crop(c, h, w) for c in crops[start:start + self._batch_size]])
            with accel.autocast(self.device):
                memory = self.model.encode_image(images_to_tensor(batch, self.model.cfg, self.device))
                rows = [(k - start, text) for k, text in pairs if start <= k < start + len(batch)]
                for first in range(0, len(rows), chunk):
                    part = rows[first:first + chunk]
                    index = torch.tensor([k for k, _ in part], device=self.device)
                    scores += self.model.text_log_prob(memory[index], [t for _, t in part]).cpu().tolist()
        out, pos = [], 0
        for row in texts:
            out.append(scores[pos:pos + len(row)])
            pos += len(row)
        return out

    @torch.inference_mode()
    def _read_batch(self, batch: np.ndarray) -> list[tuple[str, float]]:
        x = images_to_tensor(batch, self.model.cfg, self.device)
        with accel.autocast(self.device):
            logits = self.model(x, refine_iters=self.cfg.refine_iters, branch=self.cfg.branch,
                                cross_decoding=self.cfg.cross_decoding,
                                cross_skip_confidence=self.cfg.cross_skip_confidence)
        # one device->host copy per batch; per-crop products on the host then need no further syncs
        probs = logits.float().softmax(-1).cpu()
        texts, char_probs = self.model.tokenizer.decode(probs)
        return [(t, float(p.prod())) for t, p in zip(texts, char_probs)]

