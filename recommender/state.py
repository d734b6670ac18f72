"""What `Recommender.fit` learns and `Recommender.dumps` stores: `_Fitted`.

The state is a pickle, so the module path of every class and function in it is part of the
stored format: states written before the package was split name `recommender.engine._Fitted`
(and `recommender.engine._identity`, the author analyzer), which `recommender.engine` keeps
importable so that those states still load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.types import Calibration

FORMAT_VERSION = 7  # 5: author tokens by `_surname_key`; 6: its letters in a–z (`_name_fold`);
# 7: the surname whole ("Le Cun" → "lecun", PubMed's "Smith J" → "smith")
STORE_DTYPE = np.float16  # learned arrays in the state (halves its size; scores unchanged)


@dataclass
class _Fitted:
    word_vectorizer: TfidfVectorizer
    author_vectorizer: TfidfVectorizer | None
    ids: list[str]
    index: dict[str, int]
    matrix: sp.csr_matrix  # corpus × features, L2-normalised rows (float32)
    terms: np.ndarray  # feature index → readable term ("" for author columns)
    n_word_features: int
    titles: list[str]
    # content → collaborative map (None: not learned, text only)
    text_map: np.ndarray | None = None  # features × rank (float16 on disk)
    factors: np.ndarray | None = None  # liked-at-fit papers × rank (float16 on disk)
    factor_row: np.ndarray | None = None  # corpus row → row of `factors` (−1: none)
    singular: np.ndarray | None = None  # rank singular values (float32)
    topics: np.ndarray | None = None  # interest topics × rank, unit rows (None: off)
    # how far each signal is trusted (chosen at fit on held-out likes; see recommender.calibration)
    profile_prior_likes: float = 0.0  # m: a profile of n likes leans n/(n+m) on learned factors
    text_weight: float = 0.0  # w: share of the TF-IDF centroid cosine in a score
    calibration: Calibration | None = None
