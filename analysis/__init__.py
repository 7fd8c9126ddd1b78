"""Reading results back: MLflow -> Arrow (query), statistics over seeds (aggregate), render."""
