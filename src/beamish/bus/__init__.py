"""The bus: in-node topics for what may be dropped, durable mailboxes in the store for what must not."""

from beamish.bus._mailbox import Mailboxes, Message
from beamish.bus._notify import CHANNEL
from beamish.bus._pubsub import PubSub, Subscription

__all__ = ["CHANNEL", "Mailboxes", "Message", "PubSub", "Subscription"]
