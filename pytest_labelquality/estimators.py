"""The scikit-learn classifiers of the built-in models, built for one fold: ``estimator(config,
seed, data)`` of their registry entries. scikit-learn is imported only when one is built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.models import ModelConfig


def _categorical(data: Dataset) -> list[int]:
    return [j for j, names in enumerate(data.categories) if names]


def _encoded(data: Dataset, *, scale: bool) -> list[Any]:
    """Categorical columns one-hot encoded, the others standardised (when ``scale``)."""
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = _categorical(data)
    if not categorical:
        return [StandardScaler()] if scale else []
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    rest = StandardScaler() if scale else "passthrough"
    return [make_column_transformer((onehot, categorical), remainder=rest)]


def logistic_regression(config: ModelConfig, seed: int, data: Dataset) -> Any:
    """Standardised features and a logistic regression (``max_iter`` 2000)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        *_encoded(data, scale=True), LogisticRegression(**{"max_iter": 2000, **config.params})
    )


def hist_gradient_boosting(config: ModelConfig, seed: int, data: Dataset) -> Any:
    """scikit-learn's histogram gradient boosting, categorical columns as native categories."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    categorical = _categorical(data)
    native = {"categorical_features": categorical} if categorical else {}
    return HistGradientBoostingClassifier(**{"random_state": seed, **native, **config.params})


def random_forest(config: ModelConfig, seed: int, data: Dataset) -> Any:
    """A random forest of 200 trees on one thread (folds may train at once)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    forest = RandomForestClassifier(
        **{"n_estimators": 200, "random_state": seed, "n_jobs": 1, **config.params}
    )
    return make_pipeline(*_encoded(data, scale=False), forest)


def tfidf_linear(config: ModelConfig, seed: int, data: Dataset) -> Any:
    """:func:`~pytest_labelquality.text_model.text_pipeline` on the raw strings."""
    from pytest_labelquality.text_model import text_pipeline

    return text_pipeline(dict(config.params), seed)


def tuned_logistic(config: ModelConfig, seed: int, data: Dataset) -> Any:
    """``encoder_linear``'s head: :class:`~pytest_labelquality.heads.TunedLogistic`."""
    from pytest_labelquality.heads import TunedLogistic

    return TunedLogistic(**{"seed": seed, **config.params})
