using System.CommandLine;
using Emc.Cli.Commands;
using Emc.Cli.Infrastructure;

var root = new RootCommand(
    "EMC (EdgeMatrix Computing): one network of GPUs that trains and serves AI models.\n" +
    "Run `emc up` for a local network, `emc coordinator` and `emc node` for real ones.")
{
    DemoCommand.Create(),
    CoordinatorCommand.Create(),
    NodeCommand.Create(),
    UpCommand.Create(),
    NodesCommand.Create(),
    JobsCommands.Submit(),
    JobsCommands.Jobs(),
    JobsCommands.Tasks(),
    JobsCommands.Cancel(),
    DataCommand.Create(),
    TrainCommand.Create(),
    ModelCommand.Create(),
    DeployCommands.List(),
    InferCommand.Create(),
    ChatCommand.Create(),
    BenchCommand.Create(),
    AccountCommand.Create(),
    LedgerCommands.Ledger(),
    LedgerCommands.Stake(),
    LedgerCommands.Unstake(),
    LedgerCommands.Settle(),
    LedgerCommands.ClaimProof(),
};
root.Options.Add(CommonOptions.ApiKey);

// Signals are handled per command: the coordinator by its host, the node and `up` by draining first.
var configuration = new InvocationConfiguration { ProcessTerminationTimeout = null };
return await root.Parse(args).InvokeAsync(configuration);
