"""The built-in text model, ``tfidf_linear``: TF-IDF of word and character n-grams and a
logistic regression, the whole pipeline fitted inside each fold on the fold's raw strings."""

from __future__ import annotations

from typing import Any


def text_pipeline(params: dict[str, Any], seed: int) -> Any:
    """Word 1-2-grams and character 2-5-grams within word boundaries (sublinear TF, each kept
    to the 200,000 most frequent terms seen in at least 2 texts) into a multinomial logistic
    regression (saga, ``C`` 1). ``params`` go to the regression."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    def vectorizer(**kind: Any) -> Any:
        return TfidfVectorizer(
            min_df=2, sublinear_tf=True, max_features=200_000, dtype=np.float32, **kind
        )

    return make_pipeline(
        make_union(
            vectorizer(ngram_range=(1, 2)),
            vectorizer(analyzer="char_wb", ngram_range=(2, 5)),
        ),
        LogisticRegression(
            **{"C": 1.0, "solver": "saga", "tol": 1e-3, "max_iter": 200, "random_state": seed}
            | params
        ),
    )
