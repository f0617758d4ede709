// Bench is one member of the three-member JGroups group benchmark (issue 4): the peer
// that chorus's group package is measured against. run.sh starts three of these JVMs
// on loopback; see README.md for what is measured and the caveats.
//
// Written against JGroups 2.12 (Debian's libjgroups-java): JChannel, ReceiverAdapter,
// Message with a byte[] payload.
//
// Protocol of the run, all of it multicast through the stack under test, so control
// messages are ordered with the data (total order with SEQUENCER, per-sender FIFO
// without it):
//   rank 0 (first member of the view, which is also JGroups' coordinator and hence
//   the SEQUENCER's sequencer) multicasts START(case); every member opens its counting
//   window when it delivers START, and the senders of the case start sending as fast
//   as the flow control (UFC/MFC) lets them. After the case's duration rank 0
//   multicasts STOP(case); every member closes its window when it delivers STOP,
//   stops its sender, and multicasts REPORT(count, elapsed, latency histogram). A
//   member that delivered all three REPORTs has delivered every data message of the
//   case (each sender's REPORT follows its data in FIFO order), so it multicasts
//   READY; when rank 0 delivered three READYs, no message of the case is left in
//   flight anywhere and the next case starts. After the last case rank 0 multicasts
//   END; every member answers BYE and exits 0 once it delivered all three BYEs.
// Any view other than the three members, a stall, or an exception exits non-zero.

import java.io.File;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.jgroups.Address;
import org.jgroups.JChannel;
import org.jgroups.Message;
import org.jgroups.ReceiverAdapter;
import org.jgroups.View;

public final class Bench extends ReceiverAdapter {
    static final int MEMBERS = 3;
    static final String GROUP = "chorus-bench";

    // Message types, the first payload byte.
    static final byte DATA = 1, START = 2, STOP = 3, REPORT = 4, READY = 5, END = 6, BYE = 7;
    // DATA header: type, case, sender rank, sender's nanoTime at send, and the
    // machine's real-time clock at send in microseconds (see realtimeMicros).
    static final int DATA_HEADER_BYTES = 1 + 4 + 1 + 8 + 8;

    /** A case of the run: message size, who sends, and whether it is reported. */
    static final class Case {
        final int sizeBytes;
        final boolean allSend;
        final boolean measured;
        final long durationNs;

        Case(int sizeBytes, boolean allSend, boolean measured, long durationNs) {
            this.sizeBytes = sizeBytes;
            this.allSend = allSend;
            this.measured = measured;
            this.durationNs = durationNs;
        }
    }

    /** One member's figures for a case, as carried by REPORT. */
    static final class Report {
        long delivered;
        long elapsedNs;
        long sent;
        Histogram latency;      // the member's own messages: send -> own delivery
        Histogram crossLatency; // every message: send -> this member's delivery, real-time clock
    }

    /**
     * Histogram of latencies in log buckets 2% wide from 1 microsecond (about 1000
     * buckets up to several minutes): mergeable across members, unlike percentiles,
     * and bounded in size whatever the message count.
     */
    static final class Histogram {
        static final int BUCKETS = 1000;
        static final double GROWTH = 1.02;
        static final double LOG_GROWTH = Math.log(GROWTH);
        final long[] counts = new long[BUCKETS];
        long total;

        void record(long ns) {
            double us = Math.max(1.0, ns / 1000.0);
            int i = (int) (Math.log(us) / LOG_GROWTH);
            if (i >= BUCKETS) {
                i = BUCKETS - 1;
            }
            counts[i]++;
            total++;
        }

        void merge(Histogram o) {
            for (int i = 0; i < BUCKETS; i++) {
                counts[i] += o.counts[i];
            }
            total += o.total;
        }

        /** Quantile q in milliseconds (the bucket's geometric middle), NaN if empty. */
        double quantileMs(double q) {
            if (total == 0) {
                return Double.NaN;
            }
            long rank = (long) Math.ceil(q * total);
            if (rank < 1) {
                rank = 1;
            }
            long seen = 0;
            for (int i = 0; i < BUCKETS; i++) {
                seen += counts[i];
                if (seen >= rank) {
                    return Math.pow(GROWTH, i + 0.5) / 1000.0;
                }
            }
            return Math.pow(GROWTH, BUCKETS) / 1000.0;
        }

        int nonZero() {
            int n = 0;
            for (long c : counts) {
                if (c != 0) {
                    n++;
                }
            }
            return n;
        }

        void writeTo(ByteBuffer b) {
            b.putInt(nonZero());
            for (int i = 0; i < BUCKETS; i++) {
                if (counts[i] != 0) {
                    b.putShort((short) i);
                    b.putLong(counts[i]);
                }
            }
        }

        static Histogram readFrom(ByteBuffer b) {
            Histogram h = new Histogram();
            int n = b.getInt();
            if (n < 0 || n > BUCKETS) {
                throw new IllegalArgumentException("histogram with " + n + " buckets");
            }
            for (int k = 0; k < n; k++) {
                int i = b.getShort();
                long c = b.getLong();
                if (i < 0 || i >= BUCKETS || c < 0) {
                    throw new IllegalArgumentException("bad histogram bucket " + i);
                }
                h.counts[i] += c;
                h.total += c;
            }
            return h;
        }
    }

    /** An event handed from JGroups' delivery threads to the main thread. */
    static final class Event {
        final byte type;
        final int caseId;
        final int rank;
        final Report report;
        final String failure;

        Event(byte type, int caseId, int rank, Report report, String failure) {
            this.type = type;
            this.caseId = caseId;
            this.rank = rank;
            this.report = report;
            this.failure = failure;
        }
    }

    final String order;
    final List<Case> cases;
    final long viewTimeoutNs;
    final JChannel channel;
    final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();

    // Set once the view of three forms; the rank is the position in that view.
    volatile int myRank = -1;
    volatile View formedView;
    final CountDownLatch formed = new CountDownLatch(1);
    volatile boolean ending;

    // Counting window, guarded by this (JGroups may deliver on several threads).
    int currentCase = -1;
    boolean windowOpen;
    long windowDelivered;
    long windowStartNs;
    Report closedWindow; // figures of the window closed by the last STOP
    Histogram ownLatency = new Histogram();
    Histogram crossLatency = new Histogram();

    // The sender of the current case.
    volatile boolean sending;
    volatile long sentCount;
    Thread sender;
    volatile Throwable senderFailure;

    Bench(String order, List<Case> cases, long viewTimeoutNs, File stack) throws Exception {
        this.order = order;
        this.cases = cases;
        this.viewTimeoutNs = viewTimeoutNs;
        this.channel = new JChannel(stack);
        this.channel.setReceiver(this);
    }

    // ---- delivery side (JGroups threads) ----

    @Override
    public void viewAccepted(View v) {
        log("view " + v);
        if (ending) {
            // A member that delivered every BYE may exit before the last BYE reaches
            // this one; END was delivered, so the results are complete.
            events.add(new Event(BYE, -1, -1, null, null));
            return;
        }
        if (formedView == null) {
            if (v.size() == MEMBERS) {
                myRank = v.getMembers().indexOf(channel.getAddress());
                formedView = v;
                formed.countDown();
            }
            return;
        }
        // After the group formed any change means a member died or was suspected:
        // the figures of the run would be meaningless.
        fail("view changed during the run: " + v + " (a member died or was suspected)");
    }

    @Override
    public void receive(Message msg) {
        try {
            onMessage(ByteBuffer.wrap(msg.getRawBuffer(), msg.getOffset(), msg.getLength()));
        } catch (RuntimeException e) {
            fail("bad message from " + msg.getSrc() + ": " + e);
        }
    }

    synchronized void onMessage(ByteBuffer b) {
        byte type = b.get();
        switch (type) {
        case DATA: {
            int c = b.getInt();
            int r = b.get();
            long sentNs = b.getLong();
            long sentRealtimeUs = b.getLong();
            if (c != currentCase || !windowOpen) {
                return; // a leftover of a warm-up or an earlier case: never counted
            }
            windowDelivered++;
            crossLatency.record((realtimeMicros() - sentRealtimeUs) * 1000);
            if (r == myRank) {
                // Same JVM, so the same nanoTime origin: send -> own delivery.
                ownLatency.record(System.nanoTime() - sentNs);
            }
            return;
        }
        case START: {
            int c = b.getInt();
            currentCase = c;
            windowOpen = true;
            windowDelivered = 0;
            ownLatency = new Histogram();
            crossLatency = new Histogram();
            windowStartNs = System.nanoTime();
            events.add(new Event(START, c, -1, null, null));
            return;
        }
        case STOP: {
            int c = b.getInt();
            if (c != currentCase || !windowOpen) {
                fail("STOP for case " + c + " while in case " + currentCase);
                return;
            }
            windowOpen = false;
            Report rep = new Report();
            rep.delivered = windowDelivered;
            rep.elapsedNs = System.nanoTime() - windowStartNs;
            rep.latency = ownLatency;
            rep.crossLatency = crossLatency;
            closedWindow = rep;
            events.add(new Event(STOP, c, -1, null, null));
            return;
        }
        case REPORT: {
            int c = b.getInt();
            int r = b.get();
            Report rep = new Report();
            rep.delivered = b.getLong();
            rep.elapsedNs = b.getLong();
            rep.sent = b.getLong();
            rep.latency = Histogram.readFrom(b);
            rep.crossLatency = Histogram.readFrom(b);
            events.add(new Event(REPORT, c, r, rep, null));
            return;
        }
        case READY: {
            int c = b.getInt();
            int r = b.get();
            events.add(new Event(READY, c, r, null, null));
            return;
        }
        case END:
            ending = true; // from here on members leave: view changes are expected
            events.add(new Event(END, -1, -1, null, null));
            return;
        case BYE:
            events.add(new Event(BYE, -1, b.get(), null, null));
            return;
        default:
            throw new IllegalArgumentException("unknown message type " + type);
        }
    }

    void fail(String why) {
        events.add(new Event((byte) 0, -1, -1, null, why));
    }

    // ---- main thread ----

    void multicast(byte[] payload) throws Exception {
        channel.send(new Message(null, null, payload));
    }

    void sendStart(int c) throws Exception {
        multicast(ByteBuffer.allocate(5).put(START).putInt(c).array());
    }

    void sendStop(int c) throws Exception {
        multicast(ByteBuffer.allocate(5).put(STOP).putInt(c).array());
    }

    void sendReport(int c, Report rep) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(1 + 4 + 1 + 3 * 8 + 2 * (4 + Histogram.BUCKETS * 10));
        b.put(REPORT).putInt(c).put((byte) myRank);
        b.putLong(rep.delivered).putLong(rep.elapsedNs).putLong(rep.sent);
        rep.latency.writeTo(b);
        rep.crossLatency.writeTo(b);
        byte[] out = new byte[b.position()];
        System.arraycopy(b.array(), 0, out, 0, out.length);
        multicast(out);
    }

    void sendReady(int c) throws Exception {
        multicast(ByteBuffer.allocate(6).put(READY).putInt(c).put((byte) myRank).array());
    }

    void startSender(int c, int sizeBytes) {
        sending = true;
        sentCount = 0;
        senderFailure = null;
        final int rank = myRank;
        sender = new Thread(() -> {
            try {
                long n = 0;
                while (sending) {
                    // A fresh buffer per message: JGroups keeps it for retransmission.
                    byte[] p = new byte[sizeBytes];
                    ByteBuffer b = ByteBuffer.wrap(p);
                    b.put(DATA).putInt(c).put((byte) rank).putLong(System.nanoTime()).putLong(realtimeMicros());
                    channel.send(new Message(null, null, p));
                    n++;
                    sentCount = n;
                }
            } catch (Throwable t) {
                senderFailure = t;
            }
        }, "bench-sender");
        sender.start();
    }

    long stopSender() throws InterruptedException {
        sending = false;
        if (sender == null) {
            return 0;
        }
        sender.join();
        sender = null;
        if (senderFailure != null) {
            throw new IllegalStateException("sender failed: " + senderFailure, senderFailure);
        }
        return sentCount;
    }

    int run() throws Exception {
        channel.connect(GROUP);
        System.out.println("CONNECTED " + channel.getAddress());
        System.out.flush();

        // Wait on a latch, not on the event queue: a START may be delivered right
        // after the view, before this thread looks, and must stay queued.
        if (!formed.await(viewTimeoutNs, TimeUnit.NANOSECONDS)) {
            throw new IllegalStateException("no view of " + MEMBERS + " members after "
                    + viewTimeoutNs / 1_000_000_000L + " s; last view " + channel.getView());
        }
        log("group formed, rank " + myRank + " in " + formedView);
        System.out.println("FORMED rank=" + myRank);
        System.out.flush();

        // A stalled step (a lost member the failure detector has not noticed yet,
        // a deadlock) must not hang the run.
        long maxCaseNs = 0;
        for (Case k : cases) {
            maxCaseNs = Math.max(maxCaseNs, k.durationNs);
        }
        long stallNs = maxCaseNs + TimeUnit.SECONDS.toNanos(60);

        int caseId = 0;
        Map<Integer, Map<Integer, Report>> reports = new HashMap<>();
        Map<Integer, Integer> readies = new HashMap<>();
        long stopAtNs = 0;
        int byes = 0;
        long lastProgressNs = System.nanoTime();
        if (myRank == 0) {
            sendStart(0);
        }
        while (true) {
            long now = System.nanoTime();
            if (stopAtNs != 0 && now >= stopAtNs) {
                stopAtNs = 0;
                sendStop(caseId);
                continue;
            }
            long waitNs = stopAtNs != 0 ? stopAtNs - now : lastProgressNs + stallNs - now;
            if (waitNs <= 0) {
                throw new IllegalStateException("no progress for " + stallNs / 1_000_000_000L
                        + " s in case " + caseId);
            }
            Event e = events.poll(waitNs, TimeUnit.NANOSECONDS);
            if (e == null) {
                continue;
            }
            lastProgressNs = System.nanoTime();
            if (e.failure != null) {
                throw new IllegalStateException(e.failure);
            }
            switch (e.type) {
            case START: {
                caseId = e.caseId;
                if (caseId < 0 || caseId >= cases.size()) {
                    throw new IllegalStateException("START for unknown case " + caseId);
                }
                Case k = cases.get(caseId);
                if (k.allSend || myRank == 0) {
                    startSender(caseId, k.sizeBytes);
                }
                if (myRank == 0) {
                    stopAtNs = System.nanoTime() + k.durationNs;
                }
                break;
            }
            case STOP: {
                long sent = stopSender();
                Report rep;
                synchronized (this) {
                    rep = closedWindow;
                }
                rep.sent = sent;
                sendReport(e.caseId, rep);
                break;
            }
            case REPORT: {
                Map<Integer, Report> got = reports.computeIfAbsent(e.caseId, x -> new HashMap<>());
                got.put(e.rank, e.report);
                if (got.size() == MEMBERS) {
                    if (myRank == 0) {
                        summarize(e.caseId, got);
                    }
                    reports.remove(e.caseId);
                    sendReady(e.caseId);
                }
                break;
            }
            case READY: {
                if (myRank != 0) {
                    break;
                }
                int n = readies.merge(e.caseId, 1, Integer::sum);
                if (n == MEMBERS) {
                    readies.remove(e.caseId);
                    if (e.caseId + 1 < cases.size()) {
                        sendStart(e.caseId + 1);
                    } else {
                        multicast(new byte[] {END});
                    }
                }
                break;
            }
            case END:
                multicast(new byte[] {BYE, (byte) myRank});
                break;
            case BYE:
                // Every member sends BYE after it delivered END, so once all BYEs are
                // here nobody can mistake this member's exit for a failure. Exit
                // without JChannel.close: a leave waits for a coordinator that may
                // already be gone.
                if (e.rank < 0 || ++byes == MEMBERS) {
                    return 0;
                }
                break;
            default:
                throw new IllegalStateException("unexpected event " + e.type);
            }
        }
    }

    void summarize(int caseId, Map<Integer, Report> got) {
        Case k = cases.get(caseId);
        double minRate = Double.MAX_VALUE;
        // Send -> delivery at every member, approximated per quantile by the slowest
        // member's (the per-message maximum would need every message's timestamps).
        double allP50Ms = 0, allP99Ms = 0;
        Histogram lat = new Histogram();
        long sent = 0;
        StringBuilder detail = new StringBuilder();
        List<Long> counts = new ArrayList<>();
        for (int r = 0; r < MEMBERS; r++) {
            Report rep = got.get(r);
            if (rep == null) {
                throw new IllegalStateException("no report from rank " + r);
            }
            double rate = rep.delivered / (rep.elapsedNs / 1e9);
            minRate = Math.min(minRate, rate);
            lat.merge(rep.latency);
            allP50Ms = Math.max(allP50Ms, rep.crossLatency.quantileMs(0.50));
            allP99Ms = Math.max(allP99Ms, rep.crossLatency.quantileMs(0.99));
            sent += rep.sent;
            counts.add(rep.delivered);
            detail.append(String.format(Locale.ROOT,
                    "%n  rank%d: delivered=%d in %.3fs (%.0f/s) sent=%d own-latency samples=%d p50=%.3fms p99=%.3fms;"
                            + " cross-process latency (real-time clock) p50=%.3fms p99=%.3fms",
                    r, rep.delivered, rep.elapsedNs / 1e9, rate, rep.sent, rep.latency.total,
                    rep.latency.quantileMs(0.5), rep.latency.quantileMs(0.99),
                    rep.crossLatency.quantileMs(0.5), rep.crossLatency.quantileMs(0.99)));
        }
        String senders = k.allSend ? "all" : "one";
        log(String.format(Locale.ROOT, "case %d %s size=%d senders=%s measured=%b:%s%n  total sent=%d",
                caseId, order, k.sizeBytes, senders, k.measured, detail, sent));
        if (order.equals("total") && !(counts.get(0).equals(counts.get(1)) && counts.get(1).equals(counts.get(2)))) {
            // START and STOP are totally ordered with the data, so every member's window
            // holds the same messages; different counts would mean broken total order.
            log("WARNING: members delivered different counts between START and STOP under total order: " + counts);
        }
        if (!k.measured) {
            return;
        }
        System.out.println(String.format(Locale.ROOT,
                "{\"system\":\"jgroups\",\"order\":\"%s\",\"size\":%d,\"senders\":\"%s\","
                        + "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
                        + "\"p50_all_ms\":%.3f,\"p99_all_ms\":%.3f}",
                order, k.sizeBytes, senders, minRate, minRate * k.sizeBytes / 1e6,
                lat.quantileMs(0.50), lat.quantileMs(0.99), allP50Ms, allP99Ms));
        System.out.flush();
    }

    /**
     * The machine's real-time clock (CLOCK_REALTIME, microsecond resolution on Linux
     * since JDK 15) in microseconds. Unlike nanoTime it has one origin for every
     * process on the machine, so a difference across JVMs on one host is a one-way
     * latency; it is used only for the cross-check in the log, because a clock step
     * (NTP) during a run would skew it.
     */
    static long realtimeMicros() {
        Instant t = Instant.now();
        return t.getEpochSecond() * 1_000_000L + t.getNano() / 1000;
    }

    static void log(String s) {
        System.err.println("bench: " + s);
        System.err.flush();
    }

    static void usage(String why) {
        System.err.println("bench: " + why);
        System.err.println("usage: Bench <stack.xml> <order: total|fifo> <duration-ms> <warmup-ms>"
                + " <sizes, e.g. 64,1024,8192> <patterns, e.g. one,all> <view-timeout-ms>");
        System.exit(2);
    }

    public static void main(String[] args) {
        if (args.length != 7) {
            usage("want 7 arguments, got " + args.length);
        }
        File stack = new File(args[0]);
        String order = args[1];
        long durationMs = 0, warmupMs = 0, viewTimeoutMs = 0;
        List<Integer> sizes = new ArrayList<>();
        List<Boolean> allSend = new ArrayList<>();
        try {
            durationMs = Long.parseLong(args[2]);
            warmupMs = Long.parseLong(args[3]);
            for (String s : args[4].split(",")) {
                sizes.add(Integer.parseInt(s.trim()));
            }
            for (String s : args[5].split(",")) {
                switch (s.trim()) {
                case "one": allSend.add(false); break;
                case "all": allSend.add(true); break;
                default: usage("unknown pattern " + s + " (one or all)");
                }
            }
            viewTimeoutMs = Long.parseLong(args[6]);
        } catch (NumberFormatException e) {
            usage("bad number: " + e.getMessage());
        }
        if (!stack.canRead()) {
            usage("cannot read stack file " + stack);
        }
        if (!order.equals("total") && !order.equals("fifo")) {
            usage("order must be total or fifo, not " + order);
        }
        if (durationMs <= 0 || warmupMs < 0 || viewTimeoutMs <= 0) {
            usage("durations must be positive");
        }
        for (int s : sizes) {
            if (s < DATA_HEADER_BYTES || s > 1 << 20) {
                usage("size " + s + " outside [" + DATA_HEADER_BYTES + ", 1 MiB]");
            }
        }

        List<Case> cases = new ArrayList<>();
        if (warmupMs > 0) {
            // JIT warm-up on the first case's shape, not reported.
            cases.add(new Case(sizes.get(0), allSend.get(0), false, TimeUnit.MILLISECONDS.toNanos(warmupMs)));
        }
        for (int s : sizes) {
            for (boolean all : allSend) {
                cases.add(new Case(s, all, true, TimeUnit.MILLISECONDS.toNanos(durationMs)));
            }
        }

        int rc;
        Bench b = null;
        try {
            b = new Bench(order, cases, TimeUnit.MILLISECONDS.toNanos(viewTimeoutMs), stack);
            rc = b.run();
        } catch (Throwable t) {
            log("FAILED: " + t);
            t.printStackTrace();
            rc = 1;
            if (b != null) {
                b.ending = true;
            }
        }
        // JGroups leaves non-daemon threads behind; exit explicitly.
        System.exit(rc);
    }
}
