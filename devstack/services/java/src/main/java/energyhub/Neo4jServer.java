package energyhub;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;

/**
 * Runs Neo4j Community embedded, serving Bolt, for the hub's local services.
 *
 * Usage: {@code Neo4jServer <home folder> <neo4j.conf> [ready file]}. The configuration file (written by
 * the hub's launcher) binds Bolt to loopback and turns authentication on. The ready file is written once
 * the configured password is in place: Bolt listens slightly earlier, still with the factory password, and
 * the launcher must not mistake that moment for a wrong password. The user and password come from the
 * HUB_NEO4J_USER / HUB_NEO4J_PASSWORD environment variables rather than the command line, so they never
 * show up in a process listing.
 */
public final class Neo4jServer {

    private Neo4jServer() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2 && args.length != 3) {
            System.err.println("usage: Neo4jServer <home folder> <neo4j.conf> [ready file]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Path conf = Path.of(args[1]).toAbsolutePath();
        Path readyFile = args.length == 3 ? Path.of(args[2]).toAbsolutePath() : null;
        if (readyFile != null) {
            Files.deleteIfExists(readyFile);
        }
        if (!Files.isRegularFile(conf)) {
            System.err.println("configuration file not found: " + conf);
            System.exit(2);
        }
        String user = envOr("HUB_NEO4J_USER", "neo4j");
        String password = System.getenv("HUB_NEO4J_PASSWORD");
        if (password == null || password.isEmpty()) {
            System.err.println("HUB_NEO4J_PASSWORD is not set; refusing to start Neo4j without a password");
            System.exit(2);
        }

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .loadPropertiesFromFile(conf)
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM runs the shutdown hooks: closing the service flushes the page cache and checkpoints,
        // so the next start needs no recovery.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("Neo4j stopping");
            try {
                if (readyFile != null) {
                    Files.deleteIfExists(readyFile);
                }
            } catch (java.io.IOException e) {
                System.err.println("could not remove " + readyFile + ": " + e.getMessage());
            }
            try {
                dbms.shutdown();
            } finally {
                System.out.println("Neo4j stopped");
                System.out.flush();
                stopped.countDown();
            }
        }, "hub-neo4j-shutdown"));

        try {
            setPassword(dbms.database("system"), user, password);
        } catch (RuntimeException e) {
            System.err.println("could not set the password of user '" + user + "': " + e.getMessage());
            System.exit(3);
        }
        if (readyFile != null) {
            Files.writeString(readyFile, ProcessHandle.current().pid() + "\n");
        }
        System.out.println("Neo4j ready: home " + home);
        System.out.flush();
        stopped.await();
    }

    private static void setPassword(GraphDatabaseService system, String user, String password) {
        system.executeTransactionally(
                "CREATE USER $user IF NOT EXISTS SET PASSWORD $password CHANGE NOT REQUIRED",
                Map.of("user", user, "password", password));
        try {
            system.executeTransactionally(
                    "ALTER USER $user SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("user", user, "password", password));
        } catch (RuntimeException e) {
            // Restarting with the password already in place is the normal case, not an error.
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                throw e;
            }
        }
    }

    private static String envOr(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }
}
