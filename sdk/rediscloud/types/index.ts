// Namespaces of the nested object types, as in a generated SDK: `types.input.X` / `types.output.X`.
import * as input from "./input";
import * as output from "./output";

export { input, output };
