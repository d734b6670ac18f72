"""Pure ranking: texts → vectors, profiles, scores, explanations, evaluation.

Takes and returns plain data (ids, texts, arrays); imports nothing from `daemon` or `notifications`.
"""

from recommender.context import Candidates
from recommender.engine import Recommender, RecommenderConfig
from recommender.types import Calibration, Doc, Feedback, Kind, Like, Recommendation

__all__ = [
    "Calibration",
    "Candidates",
    "Doc",
    "Feedback",
    "Kind",
    "Like",
    "Recommendation",
    "Recommender",
    "RecommenderConfig",
]
