// CoalesceJdbc.java: pgJDBC batches through the front door's INSERT coalescing
// (tests/test_fe_coalesce.py runs it). Args: url user password rows [txn].
// Sends `rows` one-row INSERTs of co_jdbc in batches of 100 (addBatch/executeBatch), in
// autocommit, or with "txn" as Kafka Connect's JDBC sink does (autocommit off, executeBatch,
// commit). In autocommit it then sends a batch of 10 whose 6th row is a duplicate key.
// Prints one line per check; exits 1 on failure.
import java.math.BigDecimal;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.Properties;

public class CoalesceJdbc {
    static void check(boolean ok, String what) {
        System.out.println((ok ? "ok " : "FAIL ") + what);
        if (!ok) {
            System.exit(1);
        }
    }

    static void bind(PreparedStatement ins, long id) throws SQLException {
        ins.setLong(1, id);
        ins.setInt(2, (int) (id % 1000));
        ins.setString(3, "row " + id + " \t\\ é");
        ins.setBigDecimal(4, new BigDecimal(id).movePointLeft(2));
        ins.setTimestamp(5, new Timestamp(1700000000000L + id * 1000));
        ins.setDouble(6, id / 8.0);
        ins.setBoolean(7, id % 2 == 0);
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        int rows = Integer.parseInt(args[3]);
        boolean txn = args.length > 4 && args[4].equals("txn");
        Properties p = new Properties();
        p.setProperty("user", args[1]);
        p.setProperty("password", args[2]);
        String sql = "INSERT INTO co_jdbc (id, k, v, n, at, f, b) VALUES (?, ?, ?, ?, ?, ?, ?)";
        try (Connection c = DriverManager.getConnection(url, p)) {
            c.setAutoCommit(!txn);
            try (PreparedStatement ins = c.prepareStatement(sql)) {
                int done = 0;
                for (int i = 0; i < rows; i++) {
                    bind(ins, i);
                    ins.addBatch();
                    if (i % 100 == 99 || i == rows - 1) {
                        for (int n : ins.executeBatch()) {
                            done += n == Statement.SUCCESS_NO_INFO ? 1 : n;
                        }
                        if (txn) {
                            c.commit();
                        }
                    }
                }
                check(done == rows, "batches counted " + done);
            }
            if (txn) {
                c.setAutoCommit(true);
            }
            try (PreparedStatement ins = c.prepareStatement(sql)) {
                for (int i = 0; i < 10; i++) {
                    bind(ins, i == 5 ? 3 : rows + i);
                    ins.addBatch();
                }
                try {
                    ins.executeBatch();
                    check(false, "duplicate key raised");
                } catch (BatchUpdateException e) {
                    check("23505".equals(e.getSQLState()), "batch failed with " + e.getSQLState());
                }
            }
            try (Statement s = c.createStatement();
                 java.sql.ResultSet rs = s.executeQuery("SELECT count(*) FROM co_jdbc")) {
                check(rs.next() && rs.getLong(1) == rows, "the failed batch left nothing");
            }
        }
        System.out.println("done");
    }
}
