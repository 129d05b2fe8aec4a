"""``genesis train deeplob``, ``genesis models list|show``, ``genesis predict``."""

from __future__ import annotations

import argparse


def _cmd_train(args: argparse.Namespace) -> int:
    from genesis.models.data import LOBDataModule
    from genesis.models.train import train_and_register

    datamodule = LOBDataModule.from_store(args.symbol, args.start, args.end, store_url=args.store,
                                          horizon=args.horizon, label=args.label, alpha=args.alpha,
                                          n_folds=args.folds, fold=args.fold, batch_size=args.batch_size,
                                          seed=args.seed, price_reference=args.price_reference,
                                          stride=args.stride)
    path, result = train_and_register(
        datamodule, directory=args.models_dir, max_epochs=args.epochs, patience=args.patience, lr=args.lr,
        weight_decay=args.weight_decay, seed=args.seed, deterministic=args.deterministic, progress=not args.quiet,
        data_note={"range": f"{args.start or 'first row'} .. {args.end or 'last row'}", "sampling": "event"})
    print(result.table("test").round(3).to_string())
    print(f"model saved: {path} (card: {path / 'MODEL_CARD.md'})")
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from genesis.models.registry import list_models, models_dir

    table = list_models(args.models_dir)
    print(table.to_string(index=False) if len(table) else f"no models in {models_dir(args.models_dir)}")
    return 0


def _cmd_models_show(args: argparse.Namespace) -> int:
    from genesis.models.registry import models_dir

    card = models_dir(args.models_dir) / args.model_id / "MODEL_CARD.md"
    if not card.exists():
        raise FileNotFoundError(f"no model {args.model_id!r} in {models_dir(args.models_dir)} (genesis models list)")
    print(card.read_text())
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from genesis.models.predict import predict_history

    frame = predict_history(args.model, args.symbol, args.start, args.end, store_url=args.store,
                            models_directory=args.models_dir)
    counts = frame["predicted"].value_counts().reindex([-1, 0, 1], fill_value=0)
    print(f"{len(frame):,} predictions written for {args.symbol} by {args.model} ({frame.attrs['seconds']:.2f} s): "
          f"down {counts[-1]:,}, stationary {counts[0]:,}, up {counts[1]:,}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a model on stored data and register it under models/")
    train_sub = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    deeplob = train_sub.add_parser("deeplob", help="DeepLOB on the event book rows of one or more symbols")
    deeplob.add_argument("--symbol", action="append", required=True, help="repeatable")
    deeplob.add_argument("--from", dest="start", default=None)
    deeplob.add_argument("--to", dest="end", default=None)
    deeplob.add_argument("--horizon", type=int, default=10, help="label horizon in book rows (default 10)")
    deeplob.add_argument("--label", choices=("fi2010", "triple_barrier"), default="fi2010")
    deeplob.add_argument("--alpha", type=float, default=2e-5, help="stationary band / barrier width (relative)")
    deeplob.add_argument("--folds", type=int, default=1, help="walk-forward folds (default 1)")
    deeplob.add_argument("--fold", type=int, default=-1, help="which fold to train (default the last)")
    deeplob.add_argument("--epochs", type=int, default=20)
    deeplob.add_argument("--patience", type=int, default=3, help="early stopping on validation macro-F1")
    deeplob.add_argument("--batch-size", type=int, default=64)
    deeplob.add_argument("--lr", type=float, default=1e-3)
    deeplob.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay (default 0)")
    deeplob.add_argument("--price-reference", choices=("level", "ema"), default="level",
                         help="prices as z-scored levels, or minus a causal EMA of the mid (default level)")
    deeplob.add_argument("--stride", type=int, default=1, help="rows between window ends (default 1)")
    deeplob.add_argument("--seed", type=int, default=0)
    deeplob.add_argument("--deterministic", action="store_true")
    deeplob.add_argument("--models-dir", default=None, help="default GENESIS_MODELS_DIR or the repository's models/")
    deeplob.add_argument("--store", default=None)
    deeplob.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    deeplob.set_defaults(handler=_cmd_train)

    models = sub.add_parser("models", help="the model registry")
    models_sub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = models_sub.add_parser("list", help="registered models with their test macro-F1 against the baselines")
    lst.add_argument("--models-dir", default=None)
    lst.set_defaults(handler=_cmd_models_list)
    show = models_sub.add_parser("show", help="a model's card")
    show.add_argument("model_id")
    show.add_argument("--models-dir", default=None)
    show.set_defaults(handler=_cmd_models_show)

    predict = sub.add_parser("predict", help="a registered model over a symbol's stored history (predictions table)")
    predict.add_argument("--model", required=True)
    predict.add_argument("--symbol", required=True)
    predict.add_argument("--from", dest="start", default=None)
    predict.add_argument("--to", dest="end", default=None)
    predict.add_argument("--models-dir", default=None)
    predict.add_argument("--store", default=None)
    predict.set_defaults(handler=_cmd_predict)
