"""exportwatch: turns Intercom's poll-only data export API into push.

The package is shipped as the Lambda layer and is also what the `exportwatch` CLI runs, so the scheduled
poller and `exportwatch poll` execute the same code path.
"""

__version__ = "0.1.0"
