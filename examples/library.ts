// virt-iscsi as a library: plan an export of a disk image to a VM and print the plan (a
// dry run changes nothing), then, when asked, do it for real and print the one command
// that undoes it.
//
//   node --import tsx examples/library.ts IMAGE VM [--storage URI] [--hypervisor URI] [--apply]
//
// Without --apply it only reads the hosts (as `virt-iscsi export --dry-run` does) and prints
// every step of the plan with the commands and documents it would run there.
import { exportImage, Session, VirtIscsiError } from 'virt-iscsi';

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const take = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i < 0 ? undefined : args.splice(i, 2)[1];
  };
  const apply = args.includes('--apply');
  const storage = take('--storage') ?? 'local';
  const hypervisor = take('--hypervisor') ?? 'local';
  const [image, vm] = args.filter((a) => a !== '--apply');
  if (!image || !vm) {
    process.stderr.write('usage: library.ts IMAGE VM [--storage URI] [--hypervisor URI] [--apply]\n');
    return 2;
  }
  const session = new Session({ dryRun: !apply });
  try {
    const result = await exportImage(session, {
      image,
      vm,
      storage,
      hypervisors: [hypervisor],
      // Each step as it is planned or run.
      onEvent: (e) => {
        if (e.type === 'start') process.stdout.write(`step ${e.index + 1}: ${e.step.title}\n`);
        if (e.type === 'skipped') process.stdout.write('  already done\n');
      },
    });
    if (apply) {
      process.stdout.write(`exported ${result.record.image} as ${result.record.name}; undo with: ${result.undo}\n`);
    } else {
      process.stdout.write(`\nthe plan (nothing was changed):\n${session.renderPlan()}\n`);
    }
    return 0;
  } catch (e) {
    // Our errors are one line for people; anything else is a bug worth its stack.
    if (e instanceof VirtIscsiError) {
      process.stderr.write(`library.ts: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await session.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
