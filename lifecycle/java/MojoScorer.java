// Scores rows with an H2O MOJO for as long as its input stays open: one JVM serves every prediction of a process.
// Started by lifecycle/mojo_model.py as `java -cp h2o-genmodel.jar:. MojoScorer model.zip COLUMN...`.
// Protocol (UTF-8 lines): it prints `ready`; then, per request, it reads a line with the row count N and N lines of
// tab-separated cells (one per COLUMN, empty = missing) and writes N lines: a regression's value, or a classifier's
// label index followed by each class's probability. Numbers go out as the hexadecimal bits of the double, so the
// caller reads back exactly the value the MOJO computed.
import hex.genmodel.MojoModel;
import hex.genmodel.easy.EasyPredictModelWrapper;
import hex.genmodel.easy.RowData;
import hex.genmodel.easy.prediction.AbstractPrediction;
import hex.genmodel.easy.prediction.BinomialModelPrediction;
import hex.genmodel.easy.prediction.MultinomialModelPrediction;
import hex.genmodel.easy.prediction.RegressionModelPrediction;
import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

public class MojoScorer {
    private static String bits(double value) {
        return Long.toHexString(Double.doubleToRawLongBits(value));
    }

    private static void classes(StringBuilder out, int label, double[] probabilities) {
        out.append(label);
        for (double p : probabilities) {
            out.append('\t').append(bits(p));
        }
    }

    public static void main(String[] args) throws Exception {
        EasyPredictModelWrapper model = new EasyPredictModelWrapper(
            new EasyPredictModelWrapper.Config()
                .setModel(MojoModel.load(args[0]))
                .setConvertUnknownCategoricalLevelsToNa(true)
                .setConvertInvalidNumbersToNa(true));
        String[] columns = Arrays.copyOfRange(args, 1, args.length);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out, 1 << 16), false, "UTF-8");
        out.println("ready");
        out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            int rows = Integer.parseInt(line.trim());
            StringBuilder answer = new StringBuilder();
            for (int r = 0; r < rows; r++) {
                String[] cells = in.readLine().split("\t", -1);
                RowData row = new RowData();
                for (int c = 0; c < columns.length && c < cells.length; c++) {
                    if (!cells[c].isEmpty()) {
                        row.put(columns[c], cells[c]);
                    }
                }
                AbstractPrediction prediction = model.predict(row);
                if (prediction instanceof RegressionModelPrediction) {
                    answer.append(bits(((RegressionModelPrediction) prediction).value));
                } else if (prediction instanceof BinomialModelPrediction) {
                    BinomialModelPrediction binomial = (BinomialModelPrediction) prediction;
                    classes(answer, binomial.labelIndex, binomial.classProbabilities);
                } else {
                    MultinomialModelPrediction multinomial = (MultinomialModelPrediction) prediction;
                    classes(answer, multinomial.labelIndex, multinomial.classProbabilities);
                }
                answer.append('\n');
            }
            out.print(answer);
            out.flush();
        }
    }
}
