"""The bus: in-node topics for what may be dropped, durable mailboxes in the store for what must not."""

from beamish.bus._pubsub import PubSub, Subscription

__all__ = ["PubSub", "Subscription"]
