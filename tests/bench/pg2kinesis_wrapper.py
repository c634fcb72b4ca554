"""Runs pg2kinesis 0.7.0 unchanged except for one wal2json option: the
benchmark's backlog ends with a logical decoding message (its end marker),
which wal2json 2.x emits as a change without a "table" key and pg2kinesis
then crashes on (KeyError: 'table'). filter-msg-prefixes drops it.

With --one-record-per-event (the wrapper's own flag, taken out before
pg2kinesis parses its arguments), pg2kinesis's StreamWriter skips its KPL
aggregator and sends each event as its own Kinesis record, with the call
pg2kinesis itself uses (one PutRecord per record, partition key = xid), and
confirms after each: the shape Redshift streaming ingestion can read, which
pg2kinesis cannot produce unmodified."""
import sys

from pg2kinesis import slot, stream
from pg2kinesis.__main__ import main
from pg2kinesis.log import logger


def process_replication_stream(self, consume):
    logger.info('Starting the consumption of slot "%s"!' % self.slot_name)
    options = {"include-xids": 1, "filter-msg-prefixes": "kinesync_bench,kinesync_heartbeat"}
    self._repl_cursor.start_replication(self.slot_name, options=options)
    self._repl_cursor.consume_stream(consume)


def put_message_unaggregated(self, fmt_msg):
    if not fmt_msg:
        return None
    self._kinesis.put_record(Data=fmt_msg.fmt_msg.encode("utf-8"), PartitionKey=str(fmt_msg.change.xid),
                             StreamName=self.stream_name)
    return True


slot.SlotReader.process_replication_stream = process_replication_stream
if "--one-record-per-event" in sys.argv:
    sys.argv.remove("--one-record-per-event")
    stream.StreamWriter.put_message = put_message_unaggregated
sys.exit(main())
