"""SQS through boto3: receive, delete, visibility, send, depth, and provisioning with a DLQ.

`AWS_ENDPOINT_URL` is honoured (moto_server in tests and in scripts/fleet.sh). Everything here is thin
on purpose: retry and lease policy live in the worker, not in the transport.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.aws import aws_client
from app.config import Settings

#: SQS limits.
MAX_VISIBILITY_SECONDS = 12 * 3600
MAX_DELAY_SECONDS = 900


def sqs_client(settings: Settings) -> Any:
    return aws_client(settings, "sqs")


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    #: How many times SQS has delivered this message, this delivery included.
    receive_count: int


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int


class SqsQueue:
    """One queue, by URL."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def receive(
        self, *, max_messages: int = 1, wait_seconds: int = 10, visibility_timeout: int | None = None
    ) -> list[ReceivedMessage]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = visibility_timeout
        response = self.client.receive_message(**kwargs)
        return [
            ReceivedMessage(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in response.get("Messages", [])
        ]

    def send(self, body: str, *, delay_seconds: int = 0) -> str:
        response = self.client.send_message(
            QueueUrl=self.url, MessageBody=body, DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds)))
        )
        return str(response["MessageId"])

    def delete(self, message: ReceivedMessage) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)

    def change_visibility(self, message: ReceivedMessage, seconds: float) -> None:
        """Hide the message for `seconds` more from now (0: visible again at once)."""
        self.client.change_message_visibility(
            QueueUrl=self.url,
            ReceiptHandle=message.receipt_handle,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_SECONDS, int(seconds))),
        )

    def depth(self) -> QueueDepth:
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return QueueDepth(
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def dead_letter_queue(self) -> SqsQueue | None:
        """The queue this one redrives to, from its RedrivePolicy, if any."""
        attrs = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
        policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        arn = json.loads(policy)["deadLetterTargetArn"]
        name = arn.rsplit(":", 1)[-1]
        return SqsQueue(self.client, self.client.get_queue_url(QueueName=name)["QueueUrl"])


def provision_queue(client: Any, name: str, *, max_receives: int, visibility_timeout: int) -> tuple[str, str]:
    """Create (or update) queue `name` and its dead-letter queue `name-dlq`, with a redrive policy.
    Idempotent. Returns (queue URL, DLQ URL)."""
    dlq_url = client.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)})[
        "QueueUrl"
    ]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        "VisibilityTimeout": str(visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": "10",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
    }
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    except client.exceptions.QueueDoesNotExist:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return str(url), str(dlq_url)
