"""The only code that talks to DynamoDB."""

from typing import Any, Iterator


def query_items(client: Any, **args: Any) -> Iterator[dict[str, Any]]:
    """Every item of a keyed Query, following LastEvaluatedKey (boto3's paginator)."""
    for page in client.get_paginator("query").paginate(**args):
        yield from page.get("Items", [])
