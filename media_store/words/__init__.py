"""Word timestamps: :class:`WordTimestamp` and the columnar :class:`Words` with their
column-wise validation (:mod:`.timestamps`), and the storage codec between ``Words`` and the
rows of ``transcription_word_segments`` (:mod:`.segments`)."""

from media_store.words.timestamps import (
    WordDict,
    Words,
    WordsInput,
    WordsOutput,
    WordTimestamp,
    validate_words,
)

__all__ = ["WordDict", "WordTimestamp", "Words", "WordsInput", "WordsOutput", "validate_words"]
