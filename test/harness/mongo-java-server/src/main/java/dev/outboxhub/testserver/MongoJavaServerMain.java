package dev.outboxhub.testserver;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;

/**
 * mongo-java-server 1.47.0 (in-memory backend, oplog on for change streams) on 127.0.0.1:PORT,
 * for the test harness (test/harness/server.ts). Prints {@link #READY} once it accepts
 * connections; SIGTERM or SIGINT shuts it down and exits 0.
 *
 * <p>What it does differently from MongoDB (full table in README.md next to pom.xml): unique
 * indexes hold and conditional updates are atomic (collections are synchronized), ordered
 * inserts land an exact prefix; but non-unique indexes are not built, TTL is never enforced,
 * listCollections ignores its filter, there are no sessions (so no transactions), and change
 * streams ignore maxAwaitTimeMS (idle streams busy-poll) and report updates without
 * updateDescription and with the update spec as documentKey.
 */
public final class MongoJavaServerMain {
  /** The line the harness waits for on stdout. */
  static final String READY = "mongo-java-server ready on ";

  /**
   * The library's own versions stop at wire 8 (its MONGO_5_0), and MongoDB Node driver 7 refuses
   * servers below wire 9 (MongoDB 4.4). We claim exactly 4.4: the lowest the driver accepts, so it
   * switches on no newer protocol features the server may not have.
   */
  private static final MongoVersion MONGO_4_4 =
      new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
          return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
          return 9;
        }
      };

  private MongoJavaServerMain() {}

  public static void main(String[] args) {
    if (args.length != 1 || !args[0].matches("\\d{1,5}")) {
      System.err.println("usage: java -jar outbox-hub-mongo-java-server.jar PORT");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    MongoServer server = new MongoServer(new MemoryBackend().version(MONGO_4_4));
    server.enableOplog();
    try {
      server.bind("127.0.0.1", port);
    } catch (Exception e) {
      // Exception, not RuntimeException: Netty rethrows the checked BindException undeclared.
      // Its event loops are not daemon threads, so without an explicit exit this would hang.
      System.err.println("mongo-java-server: cannot bind 127.0.0.1:" + port + ": " + e);
      server.shutdownNow();
      System.exit(1);
    }

    // Registered only once bound, so the exit(1) above keeps its status. halt(0) rather than
    // returning: the JVM would otherwise report a SIGTERM as status 143.
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  server.shutdownNow();
                  Runtime.getRuntime().halt(0);
                },
                "mongo-java-server-shutdown"));
    System.out.println(READY + "127.0.0.1:" + port);
    System.out.flush();
    // Netty's non-daemon event loops keep the JVM running after main returns.
  }
}
