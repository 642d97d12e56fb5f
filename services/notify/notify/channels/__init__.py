"""Channel adapters: each takes a rendered message and an address and sends it, or raises.

- `SendError(permanent=False)`: this try failed; retry later with backoff.
- `SendError(permanent=True)`: retrying cannot help (refused address, bad recipient): fail now.
- `ChannelDown`: the channel itself is unreachable (SMTP server down): the rest of this run's
  messages on that channel wait for the next run instead of timing out one by one."""


class SendError(Exception):
    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class ChannelDown(SendError):
    pass
