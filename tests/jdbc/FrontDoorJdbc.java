// FrontDoorJdbc.java: pgJDBC through the proxy's front door (tests/test_jdbc.py runs it).
// Batches, prepared statements past prepareThreshold (server-side named statements) used
// across transactions that transaction pooling puts on different server connections, an
// error inside a transaction, and a rollback. Prints one line per check; exits 1 on failure.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class FrontDoorJdbc {
    static void check(boolean ok, String what) {
        System.out.println((ok ? "ok " : "FAIL ") + what);
        if (!ok) {
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        Properties p = new Properties();
        p.setProperty("user", args[1]);
        p.setProperty("password", args[2]);
        p.setProperty("prepareThreshold", "3");
        try (Connection c = DriverManager.getConnection(url, p);
             Connection other = DriverManager.getConnection(url, p)) {
            c.setAutoCommit(false);
            try (PreparedStatement ins = c.prepareStatement(
                    "INSERT INTO fe_jdbc (id, v) VALUES (?, ?)")) {
                for (int i = 0; i < 500; i++) {
                    ins.setInt(1, i);
                    ins.setString(2, "row " + i);
                    ins.addBatch();
                }
                int[] counts = ins.executeBatch();
                check(counts.length == 500, "batch of 500");
            }
            c.commit();
            // The same statement, many transactions: named on the server after the 3rd use.
            // Another client holds a transaction now and then, so that ours move between
            // the two server connections of the pool.
            other.setAutoCommit(false);
            long sum = 0;
            try (PreparedStatement sel = c.prepareStatement(
                    "SELECT v, pg_backend_pid() FROM fe_jdbc WHERE id = ?")) {
                java.util.Set<Integer> pids = new java.util.HashSet<>();
                for (int i = 0; i < 40; i++) {
                    if (i % 4 == 0) {
                        try (Statement s = other.createStatement()) {
                            s.execute("SELECT 1");
                        }
                    }
                    sel.setInt(1, i);
                    try (ResultSet rs = sel.executeQuery()) {
                        check(rs.next() && rs.getString(1).equals("row " + i), "select " + i);
                        pids.add(rs.getInt(2));
                    }
                    c.commit();
                    if (i % 4 == 1) {
                        other.commit();
                    }
                    sum += i;
                }
                check(pids.size() == 2, "named statement ran on " + pids.size() + " backends");
            }
            other.commit();
            try (Statement s = c.createStatement()) {
                s.execute("UPDATE fe_jdbc SET v = 'changed' WHERE id = 1");
                try {
                    s.execute("SELECT 1 / 0");
                    check(false, "division by zero raised");
                } catch (SQLException e) {
                    check("22012".equals(e.getSQLState()), "error 22012 inside a transaction");
                }
                c.rollback();
                try (ResultSet rs = s.executeQuery("SELECT v FROM fe_jdbc WHERE id = 1")) {
                    check(rs.next() && rs.getString(1).equals("row 1"), "rolled back");
                }
                c.commit();
            }
            System.out.println("done " + sum);
        }
    }
}
