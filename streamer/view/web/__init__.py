"""The live web view (`--serve [HOST:]PORT`): a page and a small JSON API over a run in progress."""
